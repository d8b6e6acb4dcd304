"""Jepsen-style accounting of a fault run: what was sent, what took effect, what was lost, what
took effect more than once. Printed in the test output (run pytest with -s to see it live; it is
also in the captured stdout of a failure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class Counts:
    name: str
    sent: int
    confirmed: int
    lost: int
    duplicated: int
    deliveries: int | None = None
    detail: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        *,
        sent: Iterable[object],
        effects: Mapping[object, int],
        deliveries: int | None = None,
        **detail: object,
    ) -> Counts:
        """``sent``: the keys that should each have exactly one effect; ``effects``: key -> how
        many times it took effect."""
        keys = list(sent)
        return cls(
            name=name,
            sent=len(keys),
            confirmed=sum(1 for k in keys if effects.get(k, 0) >= 1),
            lost=sum(1 for k in keys if effects.get(k, 0) == 0),
            duplicated=sum(n - 1 for n in effects.values() if n > 1),
            deliveries=deliveries,
            detail=detail,
        )

    def report(self) -> None:
        extra = "" if self.deliveries is None else f" deliveries={self.deliveries}"
        more = "".join(f" {k}={v}" for k, v in self.detail.items())
        print(
            f"\n[jepsen] {self.name}: sent={self.sent} confirmed={self.confirmed} "
            f"lost={self.lost} duplicated={self.duplicated}{extra}{more}",
            flush=True,
        )
