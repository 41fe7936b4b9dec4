"""Behaviour and business events: contracts (schemas/events/), the broker, and the publisher.

Producers and consumers speak plain Kafka protocol (kafka-python); only broker.py knows that the
embedded default is Tansu.
"""
