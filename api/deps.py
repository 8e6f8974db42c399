"""Shared clients, handed to routes as FastAPI dependencies.

They are `async def` although they never await: FastAPI runs a plain `def` dependency on
its thread pool, and these only read `app.state`, so every thread hand-off would be pure
delay on the ack path (four per form on a machine whose cores Temporal is already using).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from temporalio.client import Client

from api.delivery import Delivery
from api.metrics import ApiMetrics
from leadrelay.forms import FormsFile
from leadrelay.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_temporal(request: Request) -> Client:
    temporal: Client = request.app.state.temporal
    return temporal


async def get_delivery(request: Request) -> Delivery:
    delivery: Delivery = request.app.state.delivery
    return delivery


async def get_forms(request: Request) -> FormsFile:
    forms: FormsFile = request.app.state.forms
    return forms


async def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
DeliveryDep = Annotated[Delivery, Depends(get_delivery)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
FormsDep = Annotated[FormsFile, Depends(get_forms)]

# Form and hook names appear in URLs, workflow summaries and logs: keep them plain.
Slug = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
