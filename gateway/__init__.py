"""The serial gateway: a serial line (GPS receiver or sonde) to MQTT through an on-disk spool."""
