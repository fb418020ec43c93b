"""Wire formats of the field devices: bytes in, typed readings or a typed error out.

Pure code: no sockets, no SQL, no clock. The caller passes the arrival time.
"""
