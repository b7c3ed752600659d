"""An MQTT 5 device that is not Sluice's: paho-mqtt (PyPI) publishing to the gateway.

Usage: mqtt5.py HOST:PORT USERNAME SECRET
Publishes, on one MQTT 5 connection: readings 0 and 1 of its own device (QoS 1), one 200 kB
reading, one reading under another device's id, readings 2..4 (QoS 1) and reading 5 (QoS 2).
Prints one JSON object: the CONNACK's reason code and receive maximum, and per publish (in
publish order) the acknowledgement's reason code and reason string. A second connection
with a wrong secret adds its CONNACK reason code.
"""
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

host, port = sys.argv[1].rsplit(":", 1)
user, secret = sys.argv[2], sys.argv[3]


def reading(device, seq):
    return f"devices/{device}/telemetry", json.dumps({"device": device, "seq": seq})


def connect(password):
    state = {"connack": None, "receive_max": None, "acks": {}, "disconnects": 0}
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-5", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)

    def on_connect(client, userdata, flags, reason_code, properties):
        state["connack"] = reason_code.value
        state["receive_max"] = getattr(properties, "ReceiveMaximum", None)
        done.set()

    def on_publish(client, userdata, mid, reason_code, properties):
        why = getattr(properties, "ReasonString", None) if properties else None
        state["acks"][mid] = (reason_code.value, why)

    def on_disconnect(client, userdata, flags, reason_code, properties):
        state["disconnects"] += 1
        done.set()

    c.on_connect, c.on_publish, c.on_disconnect = on_connect, on_publish, on_disconnect
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    done.wait(10)
    return c, state


c, state = connect(secret)
messages = [reading(user, 0) + (1,), reading(user, 1) + (1,)]
messages.append((f"devices/{user}/telemetry", b"x" * 200_000, 1))
messages.append(reading("dev-other", 0) + (1,))
messages += [reading(user, s) + (1,) for s in (2, 3, 4)]
messages.append(reading(user, 5) + (2,))
mids = [c.publish(topic, payload, qos=qos).mid for topic, payload, qos in messages]
deadline = time.time() + 30
while time.time() < deadline and len(state["acks"]) < len(mids):
    time.sleep(0.05)
c.disconnect()
c.loop_stop()

wrong, wrong_state = connect("not-the-secret")
wrong.loop_stop()

print(json.dumps({
    "connack": state["connack"],
    "receive_max": state["receive_max"],
    "acks": [state["acks"].get(m) for m in mids],
    "wrong_secret_connack": wrong_state["connack"],
}))
