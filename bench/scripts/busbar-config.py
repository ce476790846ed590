#!/usr/bin/env python3
"""Writes a Busbar Config.json (Microsoft's emulator format) for bench/compare on stdout:
the queue `bench`, plus
  --fanout 1,10,50   topics fan1, fan10, fan50 with that many subscriptions s0..s{N-1}; on
                     every other subscription a rule that matches every bench message
                     (message-id "fanout"): SQL on s1, s5, s9, ..., correlation on s3, s7, ...
                     (the others keep the default rule, which matches everything)
  --queues N         queues q0..q{N-1} (the many-entities scenario)"""
import argparse
import json


def rules(i):
    if i % 4 == 1:
        return [{"Name": "sql", "Properties": {
            "FilterType": "Sql", "SqlFilter": {"SqlExpression": "sys.MessageId = 'fanout'"}}}]
    if i % 4 == 3:
        return [{"Name": "correlation", "Properties": {
            "FilterType": "Correlation", "CorrelationFilter": {"MessageId": "fanout"}}}]
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fanout", default="")
    p.add_argument("--queues", type=int, default=0)
    a = p.parse_args()
    queues = [{"Name": "bench", "Properties": {}}]
    queues += [{"Name": f"q{i}", "Properties": {}} for i in range(a.queues)]
    topics = []
    for n in [int(x) for x in a.fanout.split(",") if x]:
        subs = []
        for i in range(n):
            sub = {"Name": f"s{i}", "Properties": {}}
            if rules(i):
                sub["Rules"] = rules(i)
            subs.append(sub)
        topics.append({"Name": f"fan{n}", "Properties": {}, "Subscriptions": subs})
    ns = {"Name": "sbemulatorns", "Queues": queues, "Topics": topics}
    print(json.dumps({"UserConfig": {"Namespaces": [ns], "Logging": {"Type": "File"}}}))


main()
