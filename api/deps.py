"""Shared clients, handed to routes as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from temporalio.client import Client

from api.delivery import Delivery
from api.metrics import ApiMetrics
from leadrelay.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


def get_delivery(request: Request) -> Delivery:
    return request.app.state.delivery


def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
DeliveryDep = Annotated[Delivery, Depends(get_delivery)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]

# Form and hook names appear in URLs, workflow summaries and logs: keep them plain.
Slug = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
