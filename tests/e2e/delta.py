"""Reads a Sluice Delta table as an analyst would: the `deltalake` package (delta-rs) and
polars. Usage: delta.py COMMAND TABLE_URI STORAGE_OPTIONS_JSON [ARG]

  seqs            one line per row: device<TAB>seq
  history         JSON: each version's operation and Sluice's commit info, oldest first
  count VERSION   JSON: rows at VERSION read with polars (time travel), and the table's files
  column NAME     JSON: rows, and rows where NAME is null, read with polars
"""
import json
import sys

from deltalake import DeltaTable
import polars as pl

command, uri, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

if command == "seqs":
    table = DeltaTable(uri, storage_options=options).to_pyarrow_table(columns=["device", "seq"])
    for d, s in zip(table.column("device").to_pylist(), table.column("seq").to_pylist()):
        print(f"{d}\t{s}")
elif command == "history":
    history = DeltaTable(uri, storage_options=options).history()
    out = [
        {"version": h.get("version"), "operation": h.get("operation"), "sluice": h.get("sluice")}
        for h in history
    ]
    print(json.dumps(sorted(out, key=lambda h: h["version"])))
elif command == "count":
    version = int(sys.argv[4])
    frame = pl.read_delta(uri, version=version, storage_options=options)
    files = len(DeltaTable(uri, version=version, storage_options=options).file_uris())
    print(json.dumps({"rows": frame.height, "files": files}))
elif command == "column":
    frame = pl.read_delta(uri, storage_options=options)
    name = sys.argv[4]
    print(json.dumps({"rows": frame.height, "nulls": frame[name].null_count(),
                      "columns": frame.columns}))
else:
    sys.exit(f"unknown command {command}")
