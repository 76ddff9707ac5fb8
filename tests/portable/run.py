# Runs portable test modules under any interpreter (MicroPython included):
#   micropython tests/portable/run.py tlv_cases crypto_cases
# Calls every test_* function and ends with the line "N passed, M failed".
import sys


def run(names):
    passed = 0
    failed = 0
    for name in names:
        module = __import__(name)
        for attr in sorted(dir(module)):
            if not attr.startswith("test_"):
                continue
            try:
                getattr(module, attr)()
                passed += 1
            except Exception as exc:  # report and go on
                failed += 1
                print("FAIL %s.%s: %s %r" % (name, attr, type(exc).__name__, exc))
    print("%d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    sys.exit(1 if run(sys.argv[1:]) else 0)
