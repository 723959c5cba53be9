"""Per-sample training dynamics: the full epochs x N history, or running window statistics.

The engine records them while it trains the selection model (:mod:`deepcore_core.engine.
recording`). :class:`Dynamics` keeps every epoch's values; for a large N,
:class:`RunningDynamics` keeps only the statistics the dynamics methods score from, updated
at the end of every epoch over a ring of the last ``window`` epochs, with the window, the
early-epoch horizon and TDDS's decay fixed when recording (:class:`RunningSpec`).
NumPy only: plugins import these without torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepcore_core.errors import DeepcoreError


@dataclasses.dataclass
class Dynamics:
    """Per-sample training dynamics, one row per epoch (epochs x N arrays).

    Values are recorded from the forward pass of each sample's mini-batch, before the update:

    * ``loss``: the cross-entropy; the true-class probability is ``p_true = exp(-loss)``.
    * ``correct``: whether the prediction was right.
    * ``margin``: the true-class logit minus the largest other logit (negative when wrong).
    * ``max_other``: the largest other-class probability (CCS's probability margin is
      ``p_true - max_other``).
    * ``sum_sq``: the sum of squared probabilities (per-epoch EL2N is
      ``sqrt(sum_sq - 2 p_true + 1)``).
    * ``change``: TDDS's per-epoch contribution sum_c |p_t,c log(p_t,c / p_t-1,c)| (0 in the
      first epoch), computed online against the previous epoch's probabilities.

    The last three are None in dynamics made without them (older caches, user arrays).
    Memory: 5 float32 and 1 bool per sample and epoch, 21 MB per million samples and epoch,
    plus the previous epoch's probabilities while training (4 C bytes per sample).
    """

    loss: np.ndarray  # float32, epochs x N
    correct: np.ndarray  # bool, epochs x N
    margin: np.ndarray  # float32, epochs x N
    max_other: np.ndarray | None = None  # float32, epochs x N
    sum_sq: np.ndarray | None = None  # float32, epochs x N
    change: np.ndarray | None = None  # float32, epochs x N

    @property
    def samples(self) -> int:
        """N, the number of samples."""
        return int(self.correct.shape[1])

    @property
    def p_true(self) -> np.ndarray:
        """The true-class probability per epoch, ``exp(-loss)``."""
        return np.exp(-self.loss.astype(np.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that are present, by name."""
        return {k: v for k, v in vars(self).items() if v is not None}

    def save(self, path: Path | IO[bytes]) -> None:
        """Write as a compressed ``.npz`` (to a path or an open binary file)."""
        np.savez_compressed(path, **self.arrays())  # type: ignore[arg-type]

    def shapes(self) -> dict[str, list[Any]]:
        """Shape and dtype of each array, for the cache's records."""
        return {k: [list(v.shape), str(v.dtype)] for k, v in self.arrays().items()}

    def need(self, name: str, method: str) -> np.ndarray:
        """The array ``name``, or a clear error naming ``method`` when it was not recorded."""
        value = self.p_true if name == "p_true" else getattr(self, name)
        if value is None:
            raise DeepcoreError(
                f"method '{method}' needs the dynamics' '{name}', which these dynamics lack "
                "(select from a dataset so that the engine records it, or give it)"
            )
        return np.asarray(value)


@dataclasses.dataclass(frozen=True)
class RunningSpec:
    """What running statistics keep: the sliding ``window`` (epochs), the ``horizon`` of
    early epochs DUAL and TDDS count, and TDDS's ``decay``. The defaults are those methods'
    defaults; a method whose options differ asks for a recording with its values."""

    window: int = 10
    horizon: int = 30
    decay: float = 0.9

    def __post_init__(self) -> None:
        w, h, d = self.window, self.horizon, self.decay
        checks = [
            (isinstance(w, int) and w >= 2, f"window must be an integer >= 2, got {w!r}"),
            (isinstance(h, int) and h >= 2, f"horizon must be an integer >= 2, got {h!r}"),
            (isinstance(d, (int, float)) and 0.0 < d <= 1.0, f"decay must be in (0, 1], got {d!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DeepcoreError(f"dynamics_options: {msg}")

    @classmethod
    def parse(cls, options: dict[str, Any]) -> RunningSpec:
        """From a mapping (YAML, Python); an unknown key is an error naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in options:
            if key not in known:
                raise DeepcoreError(
                    f"dynamics_options: unknown key '{key}' (known: {', '.join(sorted(known))})"
                )
        return cls(**options)

    def key(self) -> dict[str, Any]:
        """The spec for cache and run keys."""
        # "tdds": the window counts epochs (recordings before it counted changes)
        return {"kind": "running", **dataclasses.asdict(self), "tdds": "epochs"}

    def sizes(self, epochs: int) -> dict[str, int]:
        """For ``epochs`` recorded epochs: the window of dyn-unc (``unc``), the epochs DUAL
        counts (``early``), DUAL's window (``dual``) and TDDS's window in changes (``tdds``:
        a window of ``window`` epochs holds ``window - 1`` changes; 0 when there is none).
        Fewer epochs than a window make one window of them all."""
        early = min(self.horizon, epochs)
        return {
            "unc": min(self.window, epochs),
            "early": early,
            "dual": min(self.window, early),
            "tdds": min(self.window - 1, early - 1),
        }


#: the per-sample statistics a :class:`RunningDynamics` holds
RUNNING_FIELDS = (
    "aum",
    "aum_probability",
    "forgetting",
    "ever_correct",
    "dyn_unc",
    "dual",
    "tdds",
    "early_p_true",
)


@dataclasses.dataclass
class RunningDynamics:
    """Running statistics of the training dynamics, one value per sample.

    * ``aum`` / ``aum_probability``: the mean logit / probability margin over the epochs.
    * ``forgetting``: correct-to-wrong transitions between consecutive epochs;
      ``ever_correct``: whether the sample was ever classified correctly.
    * ``dyn_unc``: the mean over sliding windows of std(p_y); ``dual``: the mean over windows
      within the first ``horizon`` epochs of std(p_y) x (1 - mean p_y); ``early_p_true``:
      the mean p_y over those epochs; ``tdds``: the decay-weighted sum over windows of the
      L2 deviation of the per-epoch prediction change from its window mean.

    The same values the full history gives for the spec's options (up to the order of
    floating-point sums). Memory while training, per sample: 71 bytes, a ring of ``window``
    float32 losses and one of ``window - 1`` changes, and the previous epoch's probabilities
    (4 C bytes): 187 MB per million samples with the default window of 10 and 10 classes,
    whatever the number of epochs (the full history takes 21 MB per million and epoch);
    53 bytes per sample afterwards.
    """

    epochs: int
    spec: RunningSpec
    aum: np.ndarray
    aum_probability: np.ndarray
    forgetting: np.ndarray
    ever_correct: np.ndarray
    dyn_unc: np.ndarray
    dual: np.ndarray
    tdds: np.ndarray
    early_p_true: np.ndarray

    @property
    def samples(self) -> int:
        """N, the number of samples."""
        return int(self.aum.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name, the epochs and the spec as scalars."""
        out = {k: np.asarray(getattr(self, k)) for k in RUNNING_FIELDS}
        out["epochs"] = np.asarray(self.epochs)
        out.update({f"spec_{k}": np.asarray(v) for k, v in dataclasses.asdict(self.spec).items()})
        return out

    def save(self, path: Path | IO[bytes]) -> None:
        """Write as a compressed ``.npz`` (to a path or an open binary file)."""
        np.savez_compressed(path, **self.arrays())  # type: ignore[arg-type]

    def shapes(self) -> dict[str, list[Any]]:
        """Shape and dtype of each array, for the cache's records."""
        return {k: [list(v.shape), str(v.dtype)] for k, v in self.arrays().items()}

    def value(self, name: str, method: str, **options: float) -> np.ndarray:
        """The statistic ``name`` for ``method``, checking that the method's ``options``
        (``window``, ``horizon``, ``decay``) select the same windows as the recording."""
        wanted = dataclasses.replace(self.spec, **options)  # type: ignore[arg-type]
        have = {**self.spec.sizes(self.epochs), "decay": self.spec.decay}
        need = {**wanted.sizes(self.epochs), "decay": wanted.decay}
        if any(have[k] != need[k] for k in _DEPENDS.get(name, ())):
            given = ", ".join(f"{k}={v}" for k, v in options.items())
            raise DeepcoreError(
                f"method '{method}' with {given} needs other windows than the running "
                f"dynamics recorded ({_describe(self.spec)}); record with dynamics_options "
                f"{{{given.replace('=', ': ')}}} or keep the full history (dynamics: full)"
            )
        return np.asarray(getattr(self, name))

    @classmethod
    def from_arrays(cls, z: Any) -> RunningDynamics:
        """From the arrays :meth:`save` wrote."""
        spec = RunningSpec(int(z["spec_window"]), int(z["spec_horizon"]), float(z["spec_decay"]))
        return cls(int(z["epochs"]), spec, **{k: z[k] for k in RUNNING_FIELDS})


#: the sizes (and decay) each windowed statistic depends on
_DEPENDS = {
    "dyn_unc": ("unc",),
    "dual": ("early", "dual"),
    "early_p_true": ("early",),
    "tdds": ("early", "tdds", "decay"),
}


def _describe(spec: RunningSpec) -> str:
    return f"window {spec.window}, horizon {spec.horizon}, decay {spec.decay:g}"


def load_dynamics(path: Path) -> Dynamics | RunningDynamics:
    """Read dynamics written by either class's ``save``."""
    with np.load(path) as z:
        if "dyn_unc" in z.files:
            return RunningDynamics.from_arrays(z)
        names = [f.name for f in dataclasses.fields(Dynamics)]
        return Dynamics(**{k: z[k] for k in names if k in z.files})
