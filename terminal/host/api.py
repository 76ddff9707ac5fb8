"""The authorisation interface, as the host side sees it.

The types live with the kernel (:mod:`emvkit.terminal.kernel.authorisation`), which sends
requests and consumes responses; the host implements :class:`Authoriser`.
"""

from emvkit.terminal.kernel.authorisation import AuthorisationRequest, AuthorisationResponse, Authoriser

__all__ = ["AuthorisationRequest", "AuthorisationResponse", "Authoriser"]
