"""The NOTIFY channels: one name each, for the sender and every listener.

A notification is sent in the transaction that changed the rows it announces, so a listener hears of
a change only once it is committed; its payload is empty (the listener reads what changed from the
tables), and a listener polls as well, in case one was missed while it was away.
"""

# Sent by the ingester (ingest/writer.py) on each commit that stored new water readings; the water
# worker (workers/water.py) listens.
WATER_CHANNEL = "citysense_water"
# Sent by the ingester on each commit that stored new bus positions; the transit worker
# (workers/transit.py) and the API's live stream (api/stream.py) listen.
BUS_CHANNEL = "citysense_bus"
# Sent by the transit worker when `bus_latest` changed; the API's live stream listens.
TRANSIT_CHANNEL = "citysense_transit"
