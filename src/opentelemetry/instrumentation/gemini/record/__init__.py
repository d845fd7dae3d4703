"""The one recording path: a call's state, how streams end, the recorder that turns a call into
spans and metrics, the instruments, the in-process counters, and pure readers of requests and
usage."""
