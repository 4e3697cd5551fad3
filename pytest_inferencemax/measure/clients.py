"""The clients, peers behind one protocol (``loadtypes.Sender``), chosen by ``ClientKind`` from a registry, as
pytest-xdist picks its scheduler: a new client is one module and one line here."""
from __future__ import annotations

from typing import Callable

from pytest_inferencemax.measure.loadtypes import ClientConfig, Sender
from pytest_inferencemax.plan.values import ClientKind


def _precise(client: ClientConfig, concurrency: int) -> Sender:
    from pytest_inferencemax.measure.precise_client import PreciseSender

    return PreciseSender(client, concurrency)


def _reference(client: ClientConfig, concurrency: int) -> Sender:
    from pytest_inferencemax.measure.refclient import ReferenceSender  # aiohttp is imported only when asked for

    return ReferenceSender(client)


SENDERS: dict[ClientKind, Callable[[ClientConfig, int], Sender]] = {
    ClientKind.PRECISE: _precise,
    ClientKind.REFERENCE: _reference,
}


def make_sender(client: ClientConfig, concurrency: int) -> Sender:
    """The client ``client.client`` names, for ``concurrency`` requests in flight."""
    return SENDERS[ClientKind(client.client)](client, concurrency)
