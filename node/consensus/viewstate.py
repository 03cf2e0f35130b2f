"""Where a replica stands among views, and the view-change messages it holds.

``ViewState`` owns the current view, whether a view change is under way and to which view,
and how many view changes passed since something last executed (the timeout backs off by
that count). ``ViewChanges`` owns the signed ``ViewChange`` messages for views above the
current one (at most ``VIEWS_PER_SENDER`` views per sender), the ``NewView`` of the current
view (resent to laggards), the view whose ``NewView`` this replica built, and the
pre-prepares that arrived for the view being entered before its ``NewView`` (at most one
watermark window of them). The view-change protocol itself is in ``views.py``.
"""

from __future__ import annotations

from node.protocol.messages import NewView, PrePrepare, ViewChange

#: view changes kept per sender (the highest views it asked for)
VIEWS_PER_SENDER = 4
#: the view-change timeout grows to at most 2**6 = 64 times the base
MAX_TIMEOUT_DOUBLINGS = 6


class ViewState:
    def __init__(self) -> None:
        self.view = 0
        self.changing = False
        #: the view being changed to (equal to ``view`` when not changing)
        self.target = 0
        #: view changes started since this replica last executed a batch
        self.failures = 0

    @property
    def active(self) -> int:
        """The view being changed to, else the current one."""
        return self.target if self.changing else self.view

    def begin(self, new_view: int) -> bool:
        """Start changing to ``new_view``; False if it is not above the active view."""
        if new_view <= self.active:
            return False
        self.changing = True
        self.target = new_view
        self.failures += 1
        return True

    def enter(self, view: int) -> None:
        """The view's ``NewView`` is accepted (``failures`` stays until a batch executes)."""
        self.view = self.target = view
        self.changing = False

    def restore(self, view: int) -> None:
        """After a restart: in ``view``, not changing."""
        self.view = self.target = view

    def progressed(self) -> None:
        self.failures = 0

    def timeout(self, base_s: float) -> float:
        doublings = min(max(self.failures - 1, 0), MAX_TIMEOUT_DOUBLINGS)
        return base_s * (2**doublings)


class ViewChanges:
    def __init__(self, future_limit: int) -> None:
        self._by_view: dict[int, dict[int, ViewChange]] = {}
        self._views_of: dict[int, list[int]] = {}
        #: the NewView of the current view (None before the first view change)
        self.new_view: NewView | None = None
        #: the view whose NewView this replica built as its primary
        self.built_view = -1
        self._future: dict[tuple[int, int], PrePrepare] = {}
        self._future_limit = future_limit

    def for_view(self, view: int) -> dict[int, ViewChange]:
        """Sender -> view change for ``view`` (read only)."""
        return self._by_view.get(view, {})

    def views(self) -> list[int]:
        return sorted(self._by_view)

    def count(self) -> int:
        return sum(len(v) for v in self._by_view.values())

    def store(self, vc: ViewChange) -> None:
        self._by_view.setdefault(vc.new_view, {})[vc.sender] = vc
        views = self._views_of.setdefault(vc.sender, [])
        if vc.new_view in views:
            return
        views.append(vc.new_view)
        views.sort()
        if len(views) > VIEWS_PER_SENDER:
            evicted = views.pop(0)
            table = self._by_view.get(evicted)
            if table is not None:
                table.pop(vc.sender, None)
                if not table:
                    del self._by_view[evicted]

    def entered(self, nv: NewView) -> None:
        """``nv``'s view is current: forget view changes for it and below."""
        view = nv.view
        self.new_view = nv
        for old in [v for v in self._by_view if v <= view]:
            del self._by_view[old]
        for sender, views in self._views_of.items():
            self._views_of[sender] = [v for v in views if v > view]

    # --- pre-prepares for the view being entered ------------------------------------------

    def buffer(self, pp: PrePrepare) -> None:
        key = (pp.view, pp.seq)
        if key not in self._future and len(self._future) < self._future_limit:
            self._future[key] = pp

    def take_buffered(self, view: int) -> list[PrePrepare]:
        """The buffered pre-prepares of ``view`` in sequence order; the buffer empties."""
        buffered = sorted(self._future.items())
        self._future.clear()
        return [pp for (pp_view, _seq), pp in buffered if pp_view == view]

    def drop_buffered(self, below_view: int = -1, upto_seq: int = -1) -> None:
        """Forget buffered pre-prepares of views below ``below_view`` or at sequence
        numbers up to ``upto_seq``."""
        for key in [k for k in self._future if k[0] < below_view or k[1] <= upto_seq]:
            del self._future[key]

    def buffered_count(self) -> int:
        return len(self._future)
