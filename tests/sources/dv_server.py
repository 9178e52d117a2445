"""A real dv-processing ``NetworkWriter`` serving the events of an AEDAT4 recording (run by the tests).

Usage: python dv_server.py PORT FILE. Prints "ready", waits for a client, sends every event
batch of FILE, prints "sent N", then keeps serving until killed.
"""

import sys
import time

import dv_processing as dv


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    reader = dv.io.MonoCameraRecording(path)
    width, height = reader.getEventResolution()
    stream = dv.io.Stream.EventStream(0, "events", reader.getCameraName(), (width, height))
    writer = dv.io.NetworkWriter("127.0.0.1", port, stream)
    print("ready", flush=True)
    while writer.getClientCount() == 0:
        time.sleep(0.005)
    sent = 0
    while True:
        batch = reader.getNextEventBatch()
        if batch is None:
            break
        writer.writeEvents(batch)
        sent += batch.size()
    print(f"sent {sent}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
