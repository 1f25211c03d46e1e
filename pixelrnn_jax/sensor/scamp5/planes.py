"""What the sensor loads: the binary kernels as register planes, and their files.

`weight_planes(variables, config)` turns a trained model's latent weights into the deployed
binary weights (sign, sign(0) = +1) laid out as the SCAMP-5 program reads them: for every
layer a stack of 25 register planes (25, 4s, 4s), one per shift-and-accumulate step in the
program's tap order (`layout.TAPS`), each 64 x 64 block filled with the weight its kernel has
at that tap (`layout` says which block holds which kernel). Blocks that hold no kernel (the
12 outer blocks of the gate planes) read 0. The learned thresholds travel with them, in model
units (the program compares `units / increment` against them).

Files (`export_weight_planes(weights, directory)`):
  weight_planes.npz   every plane stack (int8: -1, +1, 0 = unused block), the thresholds,
                      the tap order and the block side;
  cnn_<l>.pgm, cell.pgm  each stack as an 8-bit binary PGM mosaic of its 25 planes (tap k at
                      mosaic row k // 5, column k % 5; 0 = -1, 255 = +1, 128 = unused), its
                      threshold and tap order in the header comments;
  weights.h           the sensor program's C++ header (`pixelrnn_jax.official.save_header`):
                      its 16 kernel slots are these planes' 16 blocks (slot = 4 * block row +
                      block column), its 25 values per kernel their tap order.
`import_weight_planes` reads any of them back bit for bit.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ModelConfig, unwrap_params
from pixelrnn_jax.core.encoder import effective_threshold
from pixelrnn_jax.core.quantizers import sign
from pixelrnn_jax.sensor import authors_files as official
from pixelrnn_jax.sensor.scamp5 import layout
from pixelrnn_jax.sensor.scamp5.requirements import check_fits

__all__ = ["FORMAT", "FORMATS", "NPZ_NAME", "HEADER_NAME", "WeightPlanes", "weight_planes",
           "to_official", "from_official", "as_weight_planes", "export_weight_planes",
           "import_weight_planes"]

Array = jax.Array

FORMAT = "pixelrnn_jax.scamp5.weight_planes/1"
FORMATS = ("npz", "pgm", "header")
NPZ_NAME = "weight_planes.npz"
HEADER_NAME = "weights.h"
_PGM_LEVELS = {-1: 0, 0: 128, 1: 255}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class WeightPlanes:
    """Deployed weights as register planes.

    Attributes:
      cnn: per CNN layer an int8 (25, 4s, 4s) stack of +-1 tap planes.
      cnn_threshold: per CNN layer the float32 threshold (model units).
      cell: int8 (25, 4s, 4s): w_f, u_f, w_o, u_o in the central blocks, 0 elsewhere.
      theta: float32 forget-gate threshold (model units).
    """

    cnn: tuple
    cnn_threshold: tuple
    cell: Array
    theta: Array

    @property
    def block(self) -> int:
        return int(self.cell.shape[-1]) // layout.GRID[1]

    @property
    def cnn_layers(self) -> int:
        return len(self.cnn)

    def kernels(self) -> dict:
        """The +-1 kernels (5 x 5, float32) the planes hold: 'cnn_<l>' (16, 5, 5), 'w_f', ..."""
        out = {}
        for i, stack in enumerate(self.cnn):
            vals = _block_values(stack, self.block)  # (25, gy, gx)
            k = np.zeros((16, layout.KERNEL, layout.KERNEL), np.float32)
            for by in range(layout.GRID[0]):
                for bx in range(layout.GRID[1]):
                    c = layout.channel_of_block(by, bx)
                    for t, (dy, dx) in enumerate(layout.TAPS):
                        k[c, dy, dx] = vals[t, by, bx]
            out[f"cnn_{i}"] = k
        vals = _block_values(self.cell, self.block)
        for name, (by, bx) in layout.CELL_BLOCKS.items():
            k = np.zeros((layout.KERNEL, layout.KERNEL), np.float32)
            for t, (dy, dx) in enumerate(layout.TAPS):
                k[dy, dx] = vals[t, by, bx]
            out[name] = k
        return out

    def to_variables(self) -> dict:
        """Encoder variables {'params': {'encoder': ...}} holding the +-1 kernels, for `encode`."""
        k = self.kernels()
        enc = {f"cnn_{i}": {"kernel": jnp.asarray(k[f"cnn_{i}"]),
                            "threshold": jnp.asarray(self.cnn_threshold[i], jnp.float32)}
               for i in range(self.cnn_layers)}
        enc["cell"] = {n: jnp.asarray(k[n]) for n in layout.CELL_BLOCKS}
        enc["cell"]["theta"] = jnp.asarray(self.theta, jnp.float32)
        return {"params": {"encoder": enc}}


def _tap_index():
    ky = np.array([dy for dy, _ in layout.TAPS])
    kx = np.array([dx for _, dx in layout.TAPS])
    return ky, kx


def _planes_from_values(vals: Array, block: int) -> Array:
    """(25, gy, gx) per-block values -> (25, gy*s, gx*s) int8 planes."""
    t, gy, gx = vals.shape
    planes = jnp.broadcast_to(vals[:, :, None, :, None], (t, gy, block, gx, block))
    return planes.reshape(t, gy * block, gx * block).astype(jnp.int8)


def _block_values(stack, block: int) -> np.ndarray:
    """(25, gy*s, gx*s) -> (25, gy, gx): the value of every block (its top-left pixel)."""
    return np.asarray(stack)[:, ::block, ::block]


def _encoder_params(variables) -> dict:
    tree = unwrap_params(variables) if isinstance(variables, dict) else variables
    if isinstance(tree, dict) and "encoder" in tree:
        tree = tree["encoder"]
    if not isinstance(tree, dict) or "cell" not in tree:
        raise ValueError("variables must be pixelrnn_jax.init(...) output (or its 'params' / "
                         "'encoder' subtree) holding an encoder with a 'cell'")
    return tree


def weight_planes(variables, config: ModelConfig) -> WeightPlanes:
    """The deployed binary weights of `variables` as the program's register planes."""
    check_fits(config)
    enc = _encoder_params(variables)
    cnn = []
    for i in range(config.cnn_layers):
        name = f"cnn_{i}"
        if name not in enc:
            raise ValueError(f"config has cnn_layers={config.cnn_layers} but the variables have "
                             f"no {name!r}; pass the config the model was built with")
        cnn.append((enc[name]["kernel"],
                    effective_threshold(np.asarray(enc[name]["threshold"]), True)))
    cell = enc["cell"]
    for name in (*layout.CELL_BLOCKS, "theta"):
        if name not in cell:
            raise ValueError(f"the cell parameters have no {name!r}: not a PixelRNN cell")
    return _build(cnn, cell, config.plane_size)


def _build(cnn, cell, block: int) -> WeightPlanes:
    """Planes from [(kernel (16 5 5), threshold)] per layer and the cell's kernels and theta;
    kernels latent or +-1 (deployed as sign, sign(0) = +1)."""
    ky, kx = _tap_index()
    chan = np.array([[layout.channel_of_block(by, bx) for bx in range(layout.GRID[1])]
                     for by in range(layout.GRID[0])])
    stacks, thresholds = [], []
    for i, (kern, threshold) in enumerate(cnn):
        if tuple(np.shape(kern)) != (16, layout.KERNEL, layout.KERNEL):
            raise ValueError(f"cnn_{i} kernel must be (16, 5, 5), got {tuple(np.shape(kern))}")
        bits = sign(jnp.asarray(kern, jnp.float32)).astype(jnp.int32)
        vals = bits[chan[None], ky[:, None, None], kx[:, None, None]]  # (25, gy, gx)
        stacks.append(_planes_from_values(vals, block))
        thresholds.append(jnp.asarray(threshold, jnp.float32))
    vals = jnp.zeros((len(layout.TAPS),) + layout.GRID, jnp.int32)
    for name, (by, bx) in layout.CELL_BLOCKS.items():
        bits = sign(jnp.asarray(cell[name], jnp.float32)).astype(jnp.int32)
        vals = vals.at[:, by, bx].set(bits[ky, kx])
    return WeightPlanes(cnn=tuple(stacks), cnn_threshold=tuple(thresholds),
                        cell=_planes_from_values(vals, block),
                        theta=jnp.asarray(cell["theta"], jnp.float32))


def to_official(wp: WeightPlanes) -> official.OfficialWeights:
    """The planes' kernels and thresholds as the authors' weights (for `official.save_header`,
    whose 16 kernel slots are the 16 blocks of these planes, in the same tap order)."""
    if wp.cnn_layers not in (1, 2):
        raise ValueError(f"the authors' formats hold 1 or 2 CNN layers, the planes have "
                         f"{wp.cnn_layers}")
    k = wp.kernels()
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    fields = {"conv1": f64(k["cnn_0"]), "thresh1": float(wp.cnn_threshold[0]),
              "rnn_threshold": float(wp.theta), **{n: f64(k[n]) for n in layout.CELL_BLOCKS}}
    if wp.cnn_layers == 2:
        fields.update(conv2=f64(k["cnn_1"]), thresh2=float(wp.cnn_threshold[1]))
    return official.OfficialWeights(**fields)


def from_official(weights: official.OfficialWeights, block: int = 64) -> WeightPlanes:
    """The authors' weights (`official.load_weights_text` / `load_header`) as register planes
    for `block` x `block` blocks (64 on the chip)."""
    cnn = [(weights.conv1, weights.thresh1)]
    if weights.conv2 is not None:
        cnn.append((weights.conv2, weights.thresh2))
    cell = {n: getattr(weights, n) for n in layout.CELL_BLOCKS}
    cell["theta"] = weights.rnn_threshold
    return _build(cnn, cell, block)


def as_weight_planes(weights, config: ModelConfig) -> WeightPlanes:
    """WeightPlanes as given, or built from model variables; checked against `config`."""
    wp = weights if isinstance(weights, WeightPlanes) else weight_planes(weights, config)
    if wp.cnn_layers != config.cnn_layers:
        raise ValueError(f"weight planes have {wp.cnn_layers} CNN layers, config.cnn_layers is "
                         f"{config.cnn_layers}")
    if wp.block != config.plane_size:
        raise ValueError(f"weight planes are for {wp.block}x{wp.block} blocks, the config's "
                         f"planes are {config.plane_size}x{config.plane_size}")
    return wp


# ------------------------------------------------------------------------------ files


def _layer_names(wp: WeightPlanes) -> list[str]:
    return [f"cnn_{i}" for i in range(wp.cnn_layers)] + ["cell"]


def _stack(wp: WeightPlanes, name: str) -> np.ndarray:
    return np.asarray(wp.cell if name == "cell" else wp.cnn[int(name[4:])], np.int8)


def _threshold(wp: WeightPlanes, name: str) -> np.float32:
    v = wp.theta if name == "cell" else wp.cnn_threshold[int(name[4:])]
    return np.float32(np.asarray(v))


def _taps_text() -> str:
    return " ".join(f"{dy},{dx}" for dy, dx in layout.TAPS)


def export_weight_planes(weights, directory, config: ModelConfig | None = None) -> list[Path]:
    """Writes weight_planes.npz and one PGM mosaic per plane stack into `directory`.

    `weights`: a WeightPlanes, or model variables together with their `config`.
    Returns the written paths.
    """
    if not isinstance(weights, WeightPlanes):
        if config is None:
            raise ValueError("exporting model variables needs their config: "
                             "export_weight_planes(variables, directory, config)")
        weights = weight_planes(weights, config)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"format": np.array(FORMAT), "taps": np.array(layout.TAPS, np.int8),
              "block": np.array(weights.block, np.int32)}
    for name in _layer_names(weights):
        arrays[name] = _stack(weights, name)
        arrays[f"{name}_threshold"] = _threshold(weights, name)
    written = [out / NPZ_NAME]
    np.savez(written[0], **arrays)
    for name in _layer_names(weights):
        path = out / f"{name}.pgm"
        _write_pgm(path, _mosaic(_stack(weights, name)),
                   [FORMAT, f"layer: {name}",
                    f"threshold: {float(_threshold(weights, name))!r}",
                    f"taps: {_taps_text()}",
                    "mosaic: tap k at row k // 5, column k % 5; 0 = -1, 255 = +1, 128 = unused"])
        written.append(path)
    if weights.cnn_layers in (1, 2):
        written.append(out / HEADER_NAME)
        official.save_header(to_official(weights), written[-1])
    return written


def import_weight_planes(path, fmt: str = "npz", block: int | None = None) -> WeightPlanes:
    """Reads `export_weight_planes` output back exactly.

    `path`: the export directory (or the file itself); `fmt`: "npz", "pgm" or "header" (the
    C++ header, which needs the `block` side the planes are for).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if not path.exists():
        raise FileNotFoundError(f"no weight planes at {path}: pass the directory written by "
                                "export_weight_planes")
    if fmt == "header":
        file = path / HEADER_NAME if path.is_dir() else path
        if not file.exists():
            raise FileNotFoundError(f"{file} not found: export_weight_planes writes "
                                    f"{HEADER_NAME} for 1 or 2 CNN layers")
        if block is None:
            raise ValueError("a header holds no plane size: pass block=64 (the chip) or the "
                             "model's plane_size")
        return from_official(official.load_header(file), block)
    if fmt == "npz":
        file = path / NPZ_NAME if path.is_dir() else path
        if not file.exists():
            raise FileNotFoundError(f"{file} not found: export_weight_planes writes {NPZ_NAME}")
        with np.load(file, allow_pickle=False) as z:
            if "format" not in z or str(z["format"]) != FORMAT:
                raise ValueError(f"{file} is not a {FORMAT} archive")
            _check_taps(z["taps"].tolist(), file)
            names = sorted(k for k in z.files if k.startswith("cnn_") and
                           not k.endswith("_threshold"))
            stacks = {n: z[n] for n in names + ["cell"]}
            thresholds = {n: np.float32(z[f"{n}_threshold"]) for n in names + ["cell"]}
    else:
        directory = path if path.is_dir() else path.parent
        names = sorted(p.stem for p in directory.glob("cnn_*.pgm"))
        stacks, thresholds = {}, {}
        for n in names + ["cell"]:
            file = directory / f"{n}.pgm"
            if not file.exists():
                raise FileNotFoundError(f"{file} not found: export_weight_planes writes it")
            image, meta = _read_pgm(file)
            if meta.get("format") != FORMAT or meta.get("layer") != n:
                raise ValueError(f"{file} is not a {FORMAT} mosaic of layer {n!r}")
            _check_taps([tuple(int(v) for v in t.split(",")) for t in meta["taps"].split()],
                        file)
            stacks[n] = _unmosaic(image, file)
            thresholds[n] = np.float32(float(meta["threshold"]))
    if [f"cnn_{i}" for i in range(len(names))] != names:
        raise ValueError(f"{path}: CNN layers must be cnn_0, cnn_1, ...; found {names}")
    for n, st in stacks.items():
        _check_stack(st, n, path)
    return WeightPlanes(cnn=tuple(jnp.asarray(stacks[n]) for n in names),
                        cnn_threshold=tuple(jnp.asarray(thresholds[n]) for n in names),
                        cell=jnp.asarray(stacks["cell"]), theta=jnp.asarray(thresholds["cell"]))


def _check_taps(taps, source) -> None:
    if [tuple(t) for t in taps] != [tuple(t) for t in layout.TAPS]:
        raise ValueError(f"{source}: tap order {taps} differs from this program's "
                         f"{list(layout.TAPS)}")


def _check_stack(stack: np.ndarray, name: str, source) -> None:
    n = len(layout.TAPS)
    gy, gx = layout.GRID
    if stack.ndim != 3 or stack.shape[0] != n or stack.shape[1] % gy or stack.shape[2] % gx \
            or stack.shape[1] // gy != stack.shape[2] // gx:
        raise ValueError(f"{source}: {name} must be ({n}, {gy}s, {gx}s) planes, "
                         f"got {stack.shape}")
    s = stack.shape[1] // gy
    vals = stack[:, ::s, ::s]
    if not np.array_equal(np.asarray(_planes_from_values(jnp.asarray(vals), s)), stack):
        raise ValueError(f"{source}: {name} planes are not constant over each block")
    allowed = {-1, 0, 1} if name == "cell" else {-1, 1}
    if not set(np.unique(vals).tolist()) <= allowed:
        raise ValueError(f"{source}: {name} holds values outside {sorted(allowed)}")


def _mosaic(stack: np.ndarray) -> np.ndarray:
    n, h, w = stack.shape
    side = layout.KERNEL
    img = np.full((side * h, side * w), 128, np.uint8)
    lut = np.zeros(3, np.uint8)
    for v, level in _PGM_LEVELS.items():
        lut[v + 1] = level
    for k in range(n):
        r, c = divmod(k, side)
        img[r * h:(r + 1) * h, c * w:(c + 1) * w] = lut[stack[k].astype(np.int64) + 1]
    return img


def _unmosaic(img: np.ndarray, source) -> np.ndarray:
    side = layout.KERNEL
    if img.shape[0] % side or img.shape[1] % side:
        raise ValueError(f"{source}: a {img.shape} image is not a {side}x{side} mosaic")
    h, w = img.shape[0] // side, img.shape[1] // side
    inverse = np.full(256, 99, np.int16)
    for v, level in _PGM_LEVELS.items():
        inverse[level] = v
    planes = inverse[img]
    if (planes == 99).any():
        raise ValueError(f"{source}: pixel levels other than 0, 128, 255")
    return np.stack([planes[r * h:(r + 1) * h, c * w:(c + 1) * w]
                     for r, c in (divmod(k, side) for k in range(len(layout.TAPS)))]
                    ).astype(np.int8)


def _write_pgm(path: Path, img: np.ndarray, comments: list[str]) -> None:
    head = "P5\n" + "".join(f"# {c}\n" for c in comments) + f"{img.shape[1]} {img.shape[0]}\n255\n"
    tmp = path.with_suffix(".pgm.tmp")
    tmp.write_bytes(head.encode("ascii") + np.ascontiguousarray(img, np.uint8).tobytes())
    os.replace(tmp, path)


def _read_pgm(path: Path) -> tuple[np.ndarray, dict]:
    data = path.read_bytes()
    if not data.startswith(b"P5"):
        raise ValueError(f"{path} is not a binary PGM (P5) file")
    pos, tokens, meta = 2, [], {}
    while len(tokens) < 3:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if pos >= len(data):
            raise ValueError(f"{path}: truncated PGM header")
        if data[pos:pos + 1] == b"#":
            end = data.index(b"\n", pos)
            line = data[pos + 1:end].decode("ascii").strip()
            if ": " in line:
                k, v = line.split(": ", 1)
                meta[k] = v
            elif line.startswith("pixelrnn_jax"):
                meta["format"] = line
            pos = end + 1
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        tokens.append(int(data[pos:end]))
        pos = end
    w, h, maxval = tokens
    if maxval != 255:
        raise ValueError(f"{path}: expected 8-bit PGM (maxval 255), got {maxval}")
    pos += 1  # the single whitespace after maxval
    if len(data) - pos != w * h:
        raise ValueError(f"{path}: expected {w * h} pixel bytes, found {len(data) - pos}")
    return np.frombuffer(data, np.uint8, w * h, pos).reshape(h, w), meta
