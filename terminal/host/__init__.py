"""The issuer side: authorisation host simulator, ISO 8583 front end, EMV crypto checks."""
