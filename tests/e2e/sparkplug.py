"""Publishes a Sparkplug B fleet the way edge nodes do, with an encoder that is not Sluice's:
Python's protobuf package with Eclipse Tahu's sparkplug_b.proto (the compiled module that
the pysparkplug package ships), over paho-mqtt, QoS 1, one connection per edge node.

Each edge node sends NBIRTH (metrics named, with aliases), a DBIRTH per device, then ROUNDS
rounds of NDATA and DDATA whose metrics carry aliases only, then DDEATHs and an NDEATH.
Halfway, edge node 0 also sends, on the same connection, bytes that are no Sparkplug
payload and a DDATA of a device that never sent its DBIRTH (hostile or broken firmware).
Values follow (edge node, device, round), so the reader can check each one.

usage: sparkplug.py HOST:PORT EDGE_NODES DEVICES_PER_NODE ROUNDS PAUSE_SECS
"""
import importlib.util
import pathlib
import sys
import time

import paho.mqtt.client as mqtt


def tahu():
    # Only the generated module: pysparkplug's own client is not used.
    spec = importlib.util.find_spec("pysparkplug")
    path = pathlib.Path(spec.submodule_search_locations[0]) / "_protobuf" / "sparkplug_b_pb2.py"
    module = importlib.util.spec_from_file_location("sparkplug_b_pb2", path)
    pb2 = importlib.util.module_from_spec(module)
    module.loader.exec_module(pb2)
    return pb2


pb = tahu()
T = pb.DataType
BASE_MS = 1_700_000_000_000


def payload(seq, metrics, ts=None):
    p = pb.Payload()
    p.timestamp = BASE_MS if ts is None else ts
    if seq is not None:
        p.seq = seq % 256
    for fields in metrics:
        m = p.metrics.add()
        for k, v in fields.items():
            setattr(m, k, v)
    return p.SerializeToString()


def node_metrics(e, r, named):
    metrics = [
        dict(alias=1, datatype=T.Double, double_value=e * 1000 + r + 0.25),
        dict(alias=2, datatype=T.Int64, long_value=(-(r + 1)) & (2**64 - 1)),
        dict(alias=3, datatype=T.Boolean, boolean_value=r % 2 == 0),
    ]
    names = ["Temperature", "Counter", "Running"]
    for m, name in zip(metrics, names):
        if named:
            m["name"] = name
        else:
            del m["datatype"]
    return metrics


def device_metrics(e, d, r, named):
    metrics = [
        dict(alias=1, datatype=T.Int32, int_value=(-(e * 100 + d * 10 + r)) & 0xFFFFFFFF),
        dict(alias=2, datatype=T.String, string_value=f"r{r}"),
    ]
    for m, name in zip(metrics, ["Speed", "Label"]):
        if named:
            m["name"] = name
        else:
            del m["datatype"]
    return metrics


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    nodes, devices, rounds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    pause = float(sys.argv[5])
    clients, infos, seq = [], [], [0] * nodes
    group = "plant"

    def send(e, kind, body, device=None):
        topic = f"spBv1.0/{group}/{kind}/edge-{e}" + (f"/dev-{device}" if device is not None else "")
        infos.append(clients[e].publish(topic, body, qos=1))

    for e in range(nodes):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{e}")
        c.connect(host, int(port))
        c.loop_start()
        clients.append(c)
        send(e, "NBIRTH", payload(0, [dict(name="bdSeq", datatype=T.UInt64, long_value=0)]
                                  + node_metrics(e, -1, True)))
        for d in range(devices):
            seq[e] += 1
            send(e, "DBIRTH", payload(seq[e], device_metrics(e, d, -1, True)), d)
    for r in range(rounds):
        for e in range(nodes):
            seq[e] += 1
            send(e, "NDATA", payload(seq[e], node_metrics(e, r, False), BASE_MS + r))
            for d in range(devices):
                seq[e] += 1
                send(e, "DDATA", payload(seq[e], device_metrics(e, d, r, False), BASE_MS + r), d)
        if r == rounds // 2:
            send(0, "NDATA", b"\xff\xff not a Sparkplug payload")
            ghost = payload(None, [dict(alias=1, int_value=5)], BASE_MS + r)
            infos.append(clients[0].publish(f"spBv1.0/{group}/DDATA/edge-0/ghost", ghost, qos=1))
        time.sleep(pause)
    for e in range(nodes):
        for d in range(devices):
            seq[e] += 1
            send(e, "DDEATH", payload(seq[e], []), d)
        send(e, "NDEATH", payload(None, [dict(name="bdSeq", datatype=T.UInt64, long_value=0)]))
    for info in infos:
        info.wait_for_publish(timeout=120)
        assert info.is_published(), "no PUBACK"
    for c in clients:
        c.loop_stop()
        c.disconnect()
    print(f"published {len(infos)} Sparkplug messages")


main()
