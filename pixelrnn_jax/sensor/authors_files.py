"""The authors' released PixelRNN weights: their text format and the SCAMP-5 C++ header.

Text format (the authors' `*.txt` files): a line `name:` and its value on the following lines.
Scalars and arrays are Python-style nested lists (`[0.9976]`); binary 5x5 kernels are
`{a1,...,a25}` groups, one per kernel, wrapped in `{ ... },` per output channel, with values
+-1 listed BOTTOM ROW FIRST (a1..a5 = kernel row 4, ..., a21..a25 = kernel row 0), each row
left to right. The 16 kernels of `cnn_model.conv1.weight` are listed in sensor-quadrant order:
the k-th group is PyTorch output channel `SENSOR_ORDER[k]` (= 4 * (k % 4) + k // 4); the
header's 16 conv filters are in the same order, one per 64x64 block of the sensor.

Header format (the sensor program's C++ header): `CONV1_WEIGHTS_5x5` (16 filters) and
`HIDDEN_WEIGHTS_5x5` (16 slots, one per block of the 4x4 processing-element grid, slot
= 4 * row + col: w_f in slot 5, u_f in 6, w_o in 9, u_o in 10, zeros elsewhere), same value
order. The header also carries the thresholds in sensor units, as the product
`INPUT_WHITE * model value`: one model unit (one +-1 product of a multiply-accumulate) is the
sensor's analog increment "input white", `INPUT_WHITE` = 10 sensor units by default, so
`cnn_model.thresh1 = 0.9976` becomes a comparison against 9.976 units on the chip.

    w = load_weights("cam_noise_iw10.txt")   # or their header, .h
    save_header(w, "weights.h")

The mapping to and from this library's parameters is `authors_model`.

Arrays here are NumPy, kernels (5 5) in PyTorch row order (row 0 on top), conv1 (16 5 5) in
PyTorch channel order. Floats are kept as float64 so that the text round trips exactly.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np

from pixelrnn_jax.sensor.units import UNITS_PER_PRODUCT

__all__ = ["OfficialWeights", "SENSOR_ORDER", "HIDDEN_SLOTS", "NUM_SLOTS", "INPUT_WHITE",
           "CELL_KERNELS", "load_weights", "kernel_from_values", "kernel_to_values",
           "conv_from_groups", "conv_to_groups", "load_weights_text", "save_weights_text",
           "save_header", "load_header", "validate"]

# k-th kernel listed in a file or header -> PyTorch output channel
SENSOR_ORDER = tuple(v - 1 for v in (1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 4, 8, 12, 16))
# header slot of each recurrent kernel (slot = 4 * block row + block column)
HIDDEN_SLOTS = {"w_f": 5, "u_f": 6, "w_o": 9, "u_o": 10}
NUM_SLOTS = 16
INPUT_WHITE = int(UNITS_PER_PRODUCT)  # the header's name for the units per product
CELL_KERNELS = ("w_f", "u_f", "w_o", "u_o")

# field -> name in the text file, in the order the authors' files list them
_TEXT_NAMES = (
    ("thresh3", "thresh3"),
    ("thresh1", "cnn_model.thresh1"),
    ("thresh2", "cnn_model.thresh2"),
    ("conv1", "cnn_model.conv1.weight"),
    ("conv2", "cnn_model.conv2.weight"),
    ("rnn_threshold", "rnn_model.rnn_threshold"),
    ("w_f", "rnn_model.convgates_i.weight"),
    ("u_f", "rnn_model.convgates_h.weight"),
    ("w_o", "rnn_model.conv_out_i.weight"),
    ("u_o", "rnn_model.conv_out_h.weight"),
    ("fin_conv_weight", "fin_conv.weight"),
    ("fin_convpost_weight", "fin_convpost.0.weight"),
    ("fin_convpost_bias", "fin_convpost.0.bias"),
    ("fc_weight", "fc.weight"),
    ("fc_bias", "fc.bias"),
)
_KERNEL_FIELDS = {"conv1", "conv2", *CELL_KERNELS}
_SCALAR_FIELDS = {"thresh1", "thresh2", "thresh3", "rnn_threshold"}
_REQUIRED = ("thresh1", "conv1", *CELL_KERNELS)


@dataclasses.dataclass
class OfficialWeights:
    """The authors' binary encoder and their off-sensor decoder.

    Encoder (deployed on the sensor): conv1 (16 5 5) and the optional conv2 (16 5 5), +-1 in
    PyTorch channel and row order; thresh1 / thresh2 the CNN thresholds after max-pooling;
    w_f, u_f, w_o, u_o (5 5) +-1; rnn_threshold subtracted from the forget pre-activation
    (0 where the file has none, and then not written back).
    Decoder (off-sensor, None when absent): fin_conv_weight (1 1 1 1) a 1x1 binary conv,
    fin_convpost_weight / _bias (1,) an affine batch-norm, tanh, minus thresh3, then
    fc_weight (classes 4096) and fc_bias (classes,).
    """

    conv1: np.ndarray
    thresh1: float
    w_f: np.ndarray
    u_f: np.ndarray
    w_o: np.ndarray
    u_o: np.ndarray
    rnn_threshold: float = 0.0
    conv2: np.ndarray | None = None
    thresh2: float | None = None
    thresh3: float | None = None
    fin_conv_weight: np.ndarray | None = None
    fin_convpost_weight: np.ndarray | None = None
    fin_convpost_bias: np.ndarray | None = None
    fc_weight: np.ndarray | None = None
    fc_bias: np.ndarray | None = None

    @property
    def cnn_layers(self) -> int:
        return 1 if self.conv2 is None else 2

    def equals(self, other: "OfficialWeights") -> bool:
        """Exact equality of every field (arrays bit for bit)."""
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if (a is None) != (b is None):
                return False
            if a is not None and not np.array_equal(np.asarray(a), np.asarray(b)):
                return False
        return True


# ----------------------------------------------------------------------------------------
# kernel value order
# ----------------------------------------------------------------------------------------


def kernel_from_values(values) -> np.ndarray:
    """25 values listed bottom row first -> (5 5) kernel with row 0 on top."""
    return np.asarray(values, np.float64).reshape(5, 5)[::-1].copy()


def kernel_to_values(kernel) -> list[int]:
    """(5 5) kernel -> its 25 values, bottom row first, each row left to right."""
    return [int(v) for v in np.asarray(kernel)[::-1].reshape(-1)]


def conv_from_groups(groups) -> np.ndarray:
    """16 kernels in sensor-quadrant order (each 25 values) -> (16 5 5) in channel order."""
    out = np.zeros((len(SENSOR_ORDER), 5, 5))
    for k, values in enumerate(groups):
        out[SENSOR_ORDER[k]] = kernel_from_values(values)
    return out


def conv_to_groups(conv) -> list[list[int]]:
    """(16 5 5) in channel order -> 16 lists of 25 values in sensor-quadrant order."""
    return [kernel_to_values(conv[SENSOR_ORDER[k]]) for k in range(len(SENSOR_ORDER))]


# ----------------------------------------------------------------------------------------
# text format
# ----------------------------------------------------------------------------------------

_NAME_LINE = re.compile(r"^([A-Za-z_][\w.]*):\s*$")
_GROUP = re.compile(r"\{([^{}]*)\}")


def _parse_kernel_groups(text: str, where: str) -> list[list[float]]:
    """`{ {a1,...,a25}, }, ...` -> one list of 25 values per output channel."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        raise ValueError(f"{where}: expected '{{...}}' kernel groups, got {stripped[:40]!r}")
    if stripped.count("{") != stripped.count("}"):
        raise ValueError(f"{where}: unbalanced braces in the kernel groups")
    groups = []
    for m in _GROUP.finditer(stripped):
        items = [s.strip() for s in m.group(1).split(",") if s.strip()]
        try:
            values = [float(s) for s in items]
        except ValueError:
            raise ValueError(f"{where}: unparsable kernel value in {{{m.group(1)[:60]}}}") from None
        if len(values) != 25:
            raise ValueError(f"{where}: kernel {len(groups)} has {len(values)} values, "
                             f"expected 25 (a 5x5 kernel)")
        groups.append(values)
    # each output channel wraps exactly one input-channel kernel: `{ {..}, },`
    outer = stripped.count("{") - len(groups)
    if outer != len(groups):
        raise ValueError(f"{where}: expected one kernel per output channel ('{{ {{a1,...}}, }},'), "
                         f"got {len(groups)} kernels in {outer} channel groups")
    return groups


def _check_binary(values, where: str, allow_zero: bool = False) -> None:
    a = np.asarray(values, np.float64)
    allowed = (-1.0, 0.0, 1.0) if allow_zero else (-1.0, 1.0)
    bad = ~np.isin(a, allowed)
    if bad.any():
        raise ValueError(f"{where}: non-binary kernel values {sorted(set(a[bad].tolist()))[:5]}; "
                         f"kernels must hold only -1 and +1")


def _parse_list(text: str, where: str):
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"{where}: unparsable value {text.strip()[:60]!r}; expected a "
                         f"Python-style list such as [0.5]") from None
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list such as [0.5], got {text.strip()[:60]!r}")
    try:
        arr = np.asarray(value, np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: ragged or non-numeric list {text.strip()[:60]!r}") from None
    if arr.dtype == object or not np.isfinite(arr).all():
        raise ValueError(f"{where}: list holds non-numeric or non-finite values")
    return arr


def _entries(path: Path, text: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    name = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _NAME_LINE.match(line)
        if m:
            name = m.group(1)
            if name in entries:
                raise ValueError(f"{path}: entry {name!r} appears twice (line {lineno})")
            entries[name] = ""
        elif line.strip():
            if name is None:
                raise ValueError(f"{path}: line {lineno} is not inside an entry: "
                                 f"{line.strip()[:60]!r}; expected a 'name:' line first")
            entries[name] += line + "\n"
    return entries


def load_weights(path) -> OfficialWeights:
    """The authors' weights from their text format (.txt) or the sensor header (.h, .hpp)."""
    path = Path(path)
    if path.suffix in (".h", ".hpp"):
        return load_header(path)
    return load_weights_text(path)


def load_weights_text(path) -> OfficialWeights:
    """Reads the authors' weight text file; malformed files raise a ValueError naming the
    file, the entry and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    entries = _entries(path, path.read_text())
    known = {n for _, n in _TEXT_NAMES}
    unknown = sorted(set(entries) - known)
    if unknown:
        raise ValueError(f"{path}: unknown entries {unknown}; expected names among {sorted(known)}")
    by_field = dict(_TEXT_NAMES)
    for field in _REQUIRED:
        if by_field[field] not in entries:
            raise ValueError(f"{path}: missing entry {by_field[field]!r}")
    fields = {}
    for field, name in _TEXT_NAMES:
        if name not in entries:
            continue
        where = f"{path}: entry {name!r}"
        body = entries[name]
        if not body.strip():
            raise ValueError(f"{where} has no value")
        if field in _KERNEL_FIELDS:
            groups = _parse_kernel_groups(body, where)
            want = 16 if field in ("conv1", "conv2") else 1
            if len(groups) != want:
                raise ValueError(f"{where}: {len(groups)} kernels, expected {want}")
            _check_binary(groups, where)
            fields[field] = (conv_from_groups(groups) if want == 16
                             else kernel_from_values(groups[0]))
        else:
            arr = _parse_list(body, where)
            if field in _SCALAR_FIELDS:
                if arr.size != 1:
                    raise ValueError(f"{where}: expected one value, got shape {arr.shape}")
                fields[field] = float(arr.reshape(-1)[0])
            else:
                fields[field] = arr
    if "conv2" in fields and "thresh2" not in fields:
        raise ValueError(f"{path}: missing entry 'cnn_model.thresh2' for the second CNN layer")
    _check_decoder(fields, path)
    return OfficialWeights(**fields)


def _check_decoder(fields: dict, path) -> None:
    fc_w, fc_b = fields.get("fc_weight"), fields.get("fc_bias")
    if fc_w is not None and fc_w.ndim != 2:
        raise ValueError(f"{path}: entry 'fc.weight' must be (classes, features), got shape "
                         f"{fc_w.shape}")
    if fc_w is not None and fc_b is not None and fc_b.shape != fc_w.shape[:1]:
        raise ValueError(f"{path}: entry 'fc.bias' has shape {fc_b.shape}, expected "
                         f"({fc_w.shape[0]},) to match 'fc.weight'")


def _format_kernels(groups) -> str:
    return "".join("    { \n        {" + ",".join(str(v) for v in g) + "},\n    }, \n"
                   for g in groups)


def _format_list(arr) -> str:
    return str(np.asarray(arr, np.float64).tolist()) + "\n"


def save_weights_text(weights: OfficialWeights, path) -> None:
    """Writes `weights` in the authors' text format (the inverse of `load_weights_text`,
    byte for byte on the authors' files). A zero rnn_threshold is omitted, as in their files."""
    validate(weights)
    out = []
    for field, name in _TEXT_NAMES:
        value = getattr(weights, field)
        if value is None or (field == "rnn_threshold" and value == 0.0):
            continue
        out.append(name + ":\n")
        if field in ("conv1", "conv2"):
            out.append(_format_kernels(conv_to_groups(value)))
        elif field in _KERNEL_FIELDS:
            out.append(_format_kernels([kernel_to_values(value)]))
        elif field in _SCALAR_FIELDS:
            out.append(_format_list([float(value)]))
        else:
            out.append(_format_list(value))
    Path(path).write_text("".join(out))


def validate(weights: OfficialWeights) -> None:
    """One-line errors for a missing, misshapen or non-binary kernel."""
    shapes = {"conv1": (16, 5, 5), "conv2": (16, 5, 5), "w_f": (5, 5), "u_f": (5, 5),
              "w_o": (5, 5), "u_o": (5, 5)}
    for field, shape in shapes.items():
        value = getattr(weights, field)
        if value is None:
            if field == "conv2":
                continue
            raise ValueError(f"weights.{field} is missing")
        if np.shape(value) != shape:
            raise ValueError(f"weights.{field} has shape {np.shape(value)}, expected {shape}")
        _check_binary(value, f"weights.{field}")


# ----------------------------------------------------------------------------------------
# SCAMP-5 header
# ----------------------------------------------------------------------------------------

_HEADER_ARRAY = re.compile(
    r"const\s+int8_t\s+(\w+)\s*\[\s*\]\s*\[\s*1\s*\]\s*\[\s*25\s*\]\s*=\s*(\{.*?\})\s*;", re.S)
_HEADER_CONST = re.compile(r"const\s+(?:int|float|double)\s+(\w+)\s*=\s*([^;]+);")
_HEADER_THRESHOLDS = (("thresh1", "CONV1_THRESHOLD"), ("thresh2", "CONV2_THRESHOLD"),
                      ("rnn_threshold", "RNN_THRESHOLD"))


def save_header(weights: OfficialWeights, path, units: int = INPUT_WHITE) -> None:
    """Writes the sensor program's C++ header: the +-1 kernels and the thresholds in sensor
    units (`units` per +-1 product, the program's "input white").

    Thresholds are written as the exact product `units * model value`, so the header both
    compiles to the sensor-unit value and reads back bit for bit.
    """
    validate(weights)
    if int(units) != units or units <= 0:
        raise ValueError(f"units must be a positive integer (sensor units per +-1 product), "
                         f"got {units}")
    lines = ["// PixelRNN binary weights for the SCAMP-5 sensor-processor.",
             "// Each kernel: 25 values, bottom kernel row first, each row left to right.",
             "#pragma once",
             "#include <cstdint>",
             "",
             f"const int INPUT_WHITE = {int(units)};  // sensor units per +-1 product",
             ""]

    def array(name, groups, comment):
        body = "".join("    { \n        {" + ",".join(str(v) for v in g) + "},\n    }, \n"
                       for g in groups)
        return [f"// {comment}", f"const int8_t {name}[][1][25] = {{\n{body}}};", ""]

    lines += array("CONV1_WEIGHTS_5x5", conv_to_groups(weights.conv1),
                   "in-pixel CNN layer 1, filter n = PyTorch channel 4 * (n % 4) + n // 4")
    if weights.conv2 is not None:
        lines += array("CONV2_WEIGHTS_5x5", conv_to_groups(weights.conv2),
                       "in-pixel CNN layer 2, same filter order")
    slots = [[0] * 25 for _ in range(NUM_SLOTS)]
    for name, slot in HIDDEN_SLOTS.items():
        slots[slot] = kernel_to_values(getattr(weights, name))
    lines += array("HIDDEN_WEIGHTS_5x5", slots,
                   "PixelRNN, slot = 4 * block row + block column: w_f 5, u_f 6, w_o 9, u_o 10")
    for field, name in _HEADER_THRESHOLDS:
        value = getattr(weights, field)
        if value is None:
            continue
        lines.append(f"const float {name} = INPUT_WHITE * {float(value)!r};")
    Path(path).write_text("\n".join(lines) + "\n")


def _header_groups(path, name, body) -> list[list[float]]:
    where = f"{path}: array {name!r}"
    inner = body.strip()[1:-1]  # drop the braces around the whole initializer
    return _parse_kernel_groups(inner, where) if inner.strip() else []


def load_header(path) -> OfficialWeights:
    """Reads a header written by `save_header` (or the sensor program's own): kernels and,
    where present, thresholds converted back to model units (value / INPUT_WHITE)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"header not found: {path}")
    text = re.sub(r"//[^\n]*", "", path.read_text())
    arrays = {m.group(1): m.group(2) for m in _HEADER_ARRAY.finditer(text)}
    for name in ("CONV1_WEIGHTS_5x5", "HIDDEN_WEIGHTS_5x5"):
        if name not in arrays:
            raise ValueError(f"{path}: missing array {name!r} "
                             f"(const int8_t {name}[][1][25] = {{...}};)")
    consts = {m.group(1): m.group(2).strip() for m in _HEADER_CONST.finditer(text)}
    units = _const_value(path, consts, "INPUT_WHITE", consts.get("INPUT_WHITE", str(INPUT_WHITE)))

    fields = {}
    conv1 = _header_groups(path, "CONV1_WEIGHTS_5x5", arrays["CONV1_WEIGHTS_5x5"])
    if len(conv1) != 16:
        raise ValueError(f"{path}: array 'CONV1_WEIGHTS_5x5' has {len(conv1)} kernels, expected 16")
    _check_binary(conv1, f"{path}: array 'CONV1_WEIGHTS_5x5'")
    fields["conv1"] = conv_from_groups(conv1)
    if "CONV2_WEIGHTS_5x5" in arrays:
        conv2 = _header_groups(path, "CONV2_WEIGHTS_5x5", arrays["CONV2_WEIGHTS_5x5"])
        if len(conv2) != 16:
            raise ValueError(f"{path}: array 'CONV2_WEIGHTS_5x5' has {len(conv2)} kernels, "
                             f"expected 16")
        _check_binary(conv2, f"{path}: array 'CONV2_WEIGHTS_5x5'")
        fields["conv2"] = conv_from_groups(conv2)
    hidden = _header_groups(path, "HIDDEN_WEIGHTS_5x5", arrays["HIDDEN_WEIGHTS_5x5"])
    if len(hidden) != NUM_SLOTS:
        raise ValueError(f"{path}: array 'HIDDEN_WEIGHTS_5x5' has {len(hidden)} slots, "
                         f"expected {NUM_SLOTS}")
    _check_binary(hidden, f"{path}: array 'HIDDEN_WEIGHTS_5x5'", allow_zero=True)
    for name, slot in HIDDEN_SLOTS.items():
        _check_binary(hidden[slot], f"{path}: array 'HIDDEN_WEIGHTS_5x5' slot {slot} ({name})")
        fields[name] = kernel_from_values(hidden[slot])
    for field, name in _HEADER_THRESHOLDS:
        if name in consts:
            fields[field] = _const_value(path, consts, name, consts[name], units)
    if "thresh1" not in fields:
        raise ValueError(f"{path}: missing constant 'CONV1_THRESHOLD' (sensor units)")
    return OfficialWeights(**fields)


def _const_value(path, consts, name, expr, units=None) -> float:
    """A header constant: a number, or `INPUT_WHITE * model value` (exact), or a number of
    sensor units divided by `units` to give model units."""
    parts = [p.strip() for p in expr.split("*")]
    try:
        if len(parts) == 2 and parts[0] == "INPUT_WHITE":
            return float(parts[1].rstrip("fF"))
        if len(parts) == 1:
            v = float(parts[0].rstrip("fF"))
            return v if units is None else v / units
    except ValueError:
        pass
    raise ValueError(f"{path}: constant {name!r} has unparsable value {expr!r}; expected a "
                     f"number or 'INPUT_WHITE * number'")
