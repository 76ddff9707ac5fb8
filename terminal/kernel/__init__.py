"""The sans-IO EMV contactless kernel: Entry Point, kernels, offline data authentication and CA keys."""
