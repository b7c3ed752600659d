"""Publishes Protobuf readings the way a cellular fleet does, with an encoder that is not
Sluice's: Python's protobuf package (the acme.v1.Reading descriptor built by hand, as
tests/protos/reading.proto declares it) and paho-mqtt, QoS 1, one connection per device.
Between the good readings each device sends one payload that is not a Reading.

usage: payloads.py HOST:PORT DEVICES PER_DEVICE
"""
import sys

import paho.mqtt.client as mqtt
from google.protobuf import descriptor_pb2 as d, descriptor_pool, message_factory

F = d.FieldDescriptorProto


def reading_class():
    f = d.FileDescriptorProto(name="reading.proto", package="acme.v1", syntax="proto3")
    loc = f.message_type.add(name="Location")
    loc.field.add(name="lat", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    loc.field.add(name="lon", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    status = f.enum_type.add(name="Status")
    for name, number in [("STATUS_UNKNOWN", 0), ("OK", 1), ("LOW_BATTERY", 2)]:
        status.value.add(name=name, number=number)
    r = f.message_type.add(name="Reading")
    r.field.add(name="temperature", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    r.field.add(name="seq", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    r.field.add(name="status", number=3, type=F.TYPE_ENUM, type_name=".acme.v1.Status",
                label=F.LABEL_OPTIONAL)
    r.field.add(name="loc", number=4, type=F.TYPE_MESSAGE, type_name=".acme.v1.Location",
                label=F.LABEL_OPTIONAL)
    r.field.add(name="samples", number=5, type=F.TYPE_INT32, label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.v1.Reading"))


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    devices, per_device = int(sys.argv[2]), int(sys.argv[3])
    Reading = reading_class()
    for dev in range(devices):
        device = f"tracker-{dev}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
        client.connect(host, int(port))
        client.loop_start()
        infos = []
        for seq in range(per_device):
            r = Reading(temperature=seq / 4, seq=(1 << 40) + seq, status=1 + seq % 2,
                        samples=[seq, -seq])
            r.loc.lat = 50 + dev
            topic = f"trackers/{device}/reading"
            infos.append(client.publish(topic, r.SerializeToString(), qos=1))
            if seq == per_device // 2:
                infos.append(client.publish(topic, b"\xff\xff\xff not protobuf", qos=1))
        for info in infos:
            info.wait_for_publish(timeout=60)
            assert info.is_published(), f"{device}: no PUBACK"
        client.loop_stop()
        client.disconnect()
    print(f"published {devices * per_device} readings and {devices} bad payloads")


main()
