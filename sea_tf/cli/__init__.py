"""The ``sea-tf`` command line. One module per stage; each only parses and calls the library."""
