"""An OTLP receiver on 127.0.0.1 for end-to-end tests: HTTP/protobuf or gRPC, self-stopping.

It decodes what the real ``opentelemetry-exporter-otlp`` sends (ExportTraceServiceRequest,
ExportMetricsServiceRequest) into plain Python values, so tests assert on what crossed the wire
rather than on the SDK objects before export.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

PROTOCOLS = ("http/protobuf", "grpc")


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    kind: int
    status_code: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    scope: str


@dataclass(frozen=True)
class ReceivedPoint:
    metric: str
    unit: str
    kind: str  # "sum", "gauge" or "histogram"
    attributes: dict[str, Any]
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    monotonic: bool | None = None
    temporality: int | None = None
    bucket_counts: tuple[int, ...] = field(default=())
    resource: dict[str, Any] = field(default_factory=dict)


class OtlpReceiver:
    """Collects spans and metric points; ``with OtlpReceiver("grpc") as rx: ... rx.endpoint``."""

    def __init__(self, protocol: str = "http/protobuf", *, max_lifetime: float = 60.0) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}")
        self.protocol = protocol
        self.payloads: list[bytes] = []  # every request body as received, for leak checks
        self._spans: list[ReceivedSpan] = []
        # Cumulative exports repeat every series: the latest point per series is the truth.
        self._points: dict[tuple[str, frozenset[tuple[str, Any]]], ReceivedPoint] = {}
        self._lock = threading.Lock()
        self._max_lifetime = max_lifetime
        self._timer: threading.Timer | None = None
        self._http: ThreadingHTTPServer | None = None
        self._grpc: grpc.Server | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> OtlpReceiver:
        if self.protocol == "grpc":
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            trace_grpc.add_TraceServiceServicer_to_server(_TraceServicer(self), server)
            metrics_grpc.add_MetricsServiceServicer_to_server(_MetricsServicer(self), server)
            self.port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            self._grpc = server
        else:
            self._http = ThreadingHTTPServer(("127.0.0.1", 0), _http_handler(self))
            self._http.daemon_threads = True
            self.port = int(self._http.server_address[1])
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._timer = threading.Timer(self._max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL: append /v1/traces or /v1/metrics for HTTP; as is for gRPC."""
        return f"http://127.0.0.1:{self.port}"

    # --- what arrived -----------------------------------------------------------------------
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def points(self, metric: str, **attrs: Any) -> list[ReceivedPoint]:
        """Latest point of each series of ``metric`` whose attributes include ``attrs``
        (``gen_ai__request__model=...`` spells ``gen_ai.request.model``)."""
        wanted = {k.replace("__", "."): v for k, v in attrs.items()}
        with self._lock:
            found = [p for (name, _), p in self._points.items() if name == metric]
        return [p for p in found if all(p.attributes.get(k) == v for k, v in wanted.items())]

    def metric_names(self) -> set[str]:
        with self._lock:
            return {name for name, _ in self._points}

    def wait_for(self, ready: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.05)
        return ready()

    # --- decoding ---------------------------------------------------------------------------
    def add_traces(self, request: trace_pb.ExportTraceServiceRequest, raw: bytes) -> None:
        spans = []
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(
                        ReceivedSpan(
                            name=s.name,
                            kind=s.kind,
                            status_code=s.status.code,
                            attributes=attributes(s.attributes),
                            events=[(e.name, attributes(e.attributes)) for e in s.events],
                            resource=resource,
                            scope=ss.scope.name,
                        )
                    )
        with self._lock:
            self.payloads.append(raw)
            self._spans.extend(spans)

    def add_metrics(self, request: metrics_pb.ExportMetricsServiceRequest, raw: bytes) -> None:
        points = []
        for rm in request.resource_metrics:
            resource = attributes(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    points.extend(_points(m, resource))
        with self._lock:
            self.payloads.append(raw)
            for p in points:
                self._points[(p.metric, frozenset(p.attributes.items()))] = p


def _points(metric: Any, resource: dict[str, Any]) -> list[ReceivedPoint]:
    kind = metric.WhichOneof("data")
    common = {"metric": metric.name, "unit": metric.unit, "kind": kind, "resource": resource}
    if kind == "sum":
        return [
            ReceivedPoint(
                **common,
                attributes=attributes(p.attributes),
                value=_number(p),
                monotonic=metric.sum.is_monotonic,
                temporality=metric.sum.aggregation_temporality,
            )
            for p in metric.sum.data_points
        ]
    if kind == "gauge":
        return [
            ReceivedPoint(**common, attributes=attributes(p.attributes), value=_number(p))
            for p in metric.gauge.data_points
        ]
    if kind == "histogram":
        return [
            ReceivedPoint(
                **common,
                attributes=attributes(p.attributes),
                count=p.count,
                sum=p.sum,
                temporality=metric.histogram.aggregation_temporality,
                bucket_counts=tuple(p.bucket_counts),
            )
            for p in metric.histogram.data_points
        ]
    return []


def _number(point: Any) -> float:
    which = point.WhichOneof("value")
    return float(getattr(point, which)) if which else 0.0


class _TraceServicer(trace_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self.receiver.add_traces(request, request.SerializeToString())
        return trace_pb.ExportTraceServiceResponse()


class _MetricsServicer(metrics_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self.receiver.add_metrics(request, request.SerializeToString())
        return metrics_pb.ExportMetricsServiceResponse()


def _http_handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            path = self.path.split("?", 1)[0]
            response: Any
            if path == "/v1/traces":
                receiver.add_traces(trace_pb.ExportTraceServiceRequest.FromString(raw), raw)
                response = trace_pb.ExportTraceServiceResponse()
            elif path == "/v1/metrics":
                receiver.add_metrics(metrics_pb.ExportMetricsServiceRequest.FromString(raw), raw)
                response = metrics_pb.ExportMetricsServiceResponse()
            elif path == "/v1/logs":
                response = None  # accepted and dropped: no test reads logs
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = response.SerializeToString() if response is not None else b""
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
