"""The wearable token from the host: its boards, provisioning over the dev link, its state, flashing.

``emvkit token provision|info|flash`` (:mod:`emvkit.terminal.cli.token`) are thin
shells over :mod:`.provision`, :mod:`.device` and :mod:`.flash`; the board table is
:mod:`.boards`.
"""
