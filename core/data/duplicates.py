"""Exact and near duplicates among a dataset's images, found without comparing all pairs.

Each decoded image leaves a fingerprint (`fingerprint`): a digest of its pixels (exact copies),
two 64-bit perceptual hashes (pHash: the signs of the 63 lowest DCT frequencies of a 32×32
grayscale thumbnail against their median) of the whole thumbnail and of its centre, the
thumbnail itself and its mean colour.

`find_duplicates` then:
  1. groups equal digests (exact copies: the same decoded pixels);
  2. finds pairs whose pHash (or one's centre pHash and the other's whole pHash, for a cropped
     copy) differ in at most 7 bits by multi-index hashing:
     each hash is cut into 4 bands of 16 bits, and two hashes within 7 bits of each other agree
     within 1 bit on at least one band (pigeonhole), so each image probes its 17 neighbouring
     values of every band in a sorted array instead of meeting every other image;
  3. keeps a candidate pair only when the brightness and tint are close and the thumbnails
     agree (correlation of the normalised pixels ≥ NEAR_CORRELATION at 32×32, best of no crop
     and a 2 or 4 % crop of either; a 16×16 look first drops most pairs cheaply):
     re-encoded, resized, slightly brightened or cropped copies pass, different pictures with
     a similar layout mostly do not;
  4. joins the pairs into groups (union-find).
Flat images (no structure for a perceptual hash) are only ever exact duplicates.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

THUMB = 32  # thumbnail side, pixels
HASH_BITS = 7  # most differing bits of a near pair's pHash (the index is exact up to 7)
CROP_HASH = 0.04  # a second pHash of the centre, cut this much each side, finds cropped copies
ROUGH_CORRELATION = 0.75  # uncropped thumbnails below this are not aligned at all
NEAR_CORRELATION = 0.97  # thumbnails of a near pair, best over the crops tried
CROPS = (0.02, 0.04)  # fractions cut from each side when aligning a pair (besides none)
COARSE, COARSE_CORRELATION = 16, 0.93  # a first, cheaper look at 16×16 (2×2 block means)
MAX_BRIGHTNESS_RATIO = 1.5  # "slightly brightened": mean brightness within this factor
MAX_TINT = 0.15  # mean colour minus its gray level, relative to brightness
MIN_STRUCTURE = 2.0  # thumbnail std (0-255) below which an image is flat
BUCKET_CAP = 2000  # a band value shared by more images carries no information: skipped


@dataclass
class Fingerprints:
    digests: list[bytes]
    phash: np.ndarray  # uint64 (N,) of the whole thumbnail
    phash_crop: np.ndarray  # uint64 (N,) of its centre
    thumbs: np.ndarray  # uint8 (N, THUMB, THUMB)
    colour: np.ndarray  # float32 (N, 3) mean RGB of the thumbnail

    def __len__(self) -> int:
        return len(self.digests)


def fingerprint(image: Image.Image) -> tuple[bytes, int, int, np.ndarray, np.ndarray]:
    """(pixel digest, pHash, centre pHash, 32×32 gray thumbnail, mean RGB) of one image."""
    header = image.mode.encode() + struct.pack("<II", *image.size)
    digest = hashlib.blake2b(header + image.tobytes(), digest_size=16).digest()
    small = image.resize((THUMB, THUMB), Image.Resampling.BOX, reducing_gap=3.0)
    colour = np.asarray(small.convert("RGB"), np.float32).reshape(-1, 3).mean(0)
    thumb = np.asarray(small.convert("L"), np.uint8)
    centre = CROP_MATRIX @ thumb.astype(np.float32) @ CROP_MATRIX.T
    return digest, phash(thumb), phash(centre), thumb, colour


def collect(prints: list[tuple[bytes, int, int, np.ndarray, np.ndarray]]) -> Fingerprints:
    """Stack per-image fingerprints into arrays."""
    if not prints:
        empty = np.zeros(0, np.uint64)
        return Fingerprints([], empty, empty, np.zeros((0, THUMB, THUMB), np.uint8),
                            np.zeros((0, 3), np.float32))
    digests, dh, ph, thumbs, colours = zip(*prints, strict=True)
    return Fingerprints(list(digests), np.array(dh, np.uint64), np.array(ph, np.uint64),
                        np.stack(thumbs), np.stack(colours).astype(np.float32))


def dct_matrix(n: int) -> np.ndarray:
    k, x = np.arange(n)[:, None], np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2)
    return matrix.astype(np.float32)


DCT = dct_matrix(THUMB)


def phash(thumb: np.ndarray) -> int:
    low = (DCT @ thumb.astype(np.float32) @ DCT.T)[:8, :8].ravel()[1:]  # without the DC term
    return bits_to_int(np.append(low > np.median(low), False))


def bits_to_int(bits: np.ndarray) -> int:
    return int(np.packbits(bits.ravel().astype(np.uint8)).view(">u8")[0])


# ------------------------------------------------------------------------------ the search

def find_duplicates(prints: Fingerprints) -> list[dict]:
    """Groups of duplicates: [{"items": [index, ...], "kind": "exact" | "near"}], each group's
    items in index order, groups in the order of their first item."""
    first_of: dict[bytes, int] = {}
    copies: dict[int, list[int]] = {}
    for index, digest in enumerate(prints.digests):
        copies.setdefault(first_of.setdefault(digest, index), []).append(index)
    reps = np.array(sorted(copies), np.int64)
    parent = {int(rep): int(rep) for rep in reps}
    for i, j in near_pairs(prints, reps):
        union(parent, int(i), int(j))
    members: dict[int, list[int]] = {}
    for rep in parent:
        members.setdefault(find(parent, rep), []).extend(copies[rep])
    groups = []
    for root, items in members.items():
        if len(items) > 1:
            kind = "exact" if len(copies[root]) == len(items) else "near"
            groups.append({"items": sorted(items), "kind": kind})
    return sorted(groups, key=lambda group: group["items"][0])


def near_pairs(prints: Fingerprints, reps: np.ndarray) -> np.ndarray:
    """(i, j) item pairs among `reps` that are near copies of each other, verified."""
    thumbs = prints.thumbs[reps].astype(np.float32)
    structured = thumbs.reshape(len(reps), -1).std(1) >= MIN_STRUCTURE
    pool = reps[structured]
    hashes, cropped = prints.phash[pool], prints.phash_crop[pool]
    found = [pool[hash_pairs(hashes, hashes)], pool[hash_pairs(cropped, hashes)]]
    pairs = unique_pairs(np.concatenate(found), len(prints))
    return pairs[verify(prints, pairs)] if len(pairs) else pairs


def hash_pairs(queries: np.ndarray, table: np.ndarray, max_bits: int = HASH_BITS) -> np.ndarray:
    """Index pairs (i, j), i != j, with queries[i] within `max_bits` (≤ 7) bits of table[j], by
    multi-index hashing: within 7 bits, two hashes agree within 1 bit on one of 4 bands."""
    out = [np.zeros((0, 2), np.int64)]
    probes = [0] + [1 << bit for bit in range(16)]
    for band in range(4):
        shift, mask = np.uint64(16 * band), np.uint64(0xFFFF)
        keys = ((queries >> shift) & mask).astype(np.int64)
        values = ((table >> shift) & mask).astype(np.int64)
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        for probe in probes:
            i, j = bucket_join(keys ^ probe, ordered, order)
            close = np.bitwise_count(queries[i] ^ table[j]) <= max_bits
            out.append(np.stack([i[close], j[close]], 1))
    return unique_pairs(np.concatenate(out), len(table))


def bucket_join(keys: np.ndarray, ordered: np.ndarray, order: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i != j, with keys[i] == values[j] (values sorted as `ordered`)."""
    lo = np.searchsorted(ordered, keys, "left")
    counts = np.searchsorted(ordered, keys, "right") - lo
    counts[counts > BUCKET_CAP] = 0
    total = int(counts.sum())
    i = np.repeat(np.arange(len(keys)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    j = order[np.repeat(lo, counts) + offsets]
    keep = i != j
    return i[keep], j[keep]


def unique_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    if not len(pairs):
        return pairs.reshape(0, 2).astype(np.int64)
    low, high = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    keys = np.unique(low.astype(np.int64) * n + high)
    return np.stack([keys // n, keys % n], 1)


def verify(prints: Fingerprints, pairs: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """Which candidate pairs are near copies: aligned thumbnails, brightness and tint."""
    keep = np.zeros(len(pairs), bool)
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        a, b = part[:, 0], part[:, 1]
        ok = colour_close(prints.colour[a], prints.colour[b])
        a, b = a[ok], b[ok]
        coarse = aligned_correlation(prints.thumbs[a], prints.thumbs[b], COARSE)
        fine = coarse >= COARSE_CORRELATION
        ok[ok] = fine
        ok[ok] = aligned_correlation(prints.thumbs[a[fine]], prints.thumbs[b[fine]]) \
            >= NEAR_CORRELATION
        keep[start:start + chunk] = ok
    return keep


def colour_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bright_a, bright_b = a.mean(1) + 1, b.mean(1) + 1
    ratio = np.maximum(bright_a / bright_b, bright_b / bright_a)
    tint = np.abs((a - a.mean(1, keepdims=True)) / bright_a[:, None]
                  - (b - b.mean(1, keepdims=True)) / bright_b[:, None]).max(1)
    return (ratio <= MAX_BRIGHTNESS_RATIO) & (tint <= MAX_TINT)


def crop_matrix(fraction: float, n: int = THUMB) -> np.ndarray:
    """n×n matrix resampling the centre (1 - 2·fraction) of a row back to n pixels (linear)."""
    cut = n * fraction
    positions = cut + (np.arange(n) + 0.5) * (n - 2 * cut) / n - 0.5
    positions = np.clip(positions, 0, n - 1)
    left = np.floor(positions).astype(int)
    right = np.minimum(left + 1, n - 1)
    weight = positions - left
    matrix = np.zeros((n, n), np.float32)
    matrix[np.arange(n), left] += 1 - weight
    matrix[np.arange(n), right] += weight
    return matrix


CROP_MATRICES = {side: [crop_matrix(fraction, side) for fraction in CROPS]
                 for side in (COARSE, THUMB)}
CROP_MATRIX = crop_matrix(CROP_HASH)


def normalised(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    flat = flat - flat.mean(1, keepdims=True)
    return flat / (np.sqrt(np.einsum("ij,ij->i", flat, flat))[:, None] + 1e-6)


def resample(matrix: np.ndarray, images: np.ndarray) -> np.ndarray:
    """matrix @ image @ matrix.T for a batch, as two large matrix products (fast in BLAS)."""
    n, side = len(images), images.shape[1]
    rows = (images.reshape(n * side, side) @ matrix.T).reshape(n, side, side)
    columns = matrix @ rows.transpose(1, 0, 2).reshape(side, n * side)
    return columns.reshape(side, n, side).transpose(1, 0, 2)


def shrink(thumbs: np.ndarray, side: int) -> np.ndarray:
    """THUMB×THUMB uint8 → side×side float32 by block means."""
    factor = THUMB // side
    return thumbs.reshape(len(thumbs), side, factor, side, factor).mean((2, 4),
                                                                          dtype=np.float32)


def aligned_correlation(a: np.ndarray, b: np.ndarray, side: int = THUMB) -> np.ndarray:
    """Best correlation of two batches of thumbnails (at side×side) when either is cropped
    by 2 or 4 % a side."""
    a, b = shrink(a, side), shrink(b, side)
    whole_a, whole_b = normalised(a), normalised(b)
    best = np.einsum("ij,ij->i", whole_a, whole_b)
    rough = best >= ROUGH_CORRELATION
    a, b, whole_a, whole_b = a[rough], b[rough], whole_a[rough], whole_b[rough]
    aligned = best[rough]
    for matrix in CROP_MATRICES[side]:
        for cropped, whole in ((a, whole_b), (b, whole_a)):
            view = normalised(resample(matrix, cropped))
            aligned = np.maximum(aligned, np.einsum("ij,ij->i", view, whole))
    best[rough] = aligned
    return best


def union(parent: dict[int, int], i: int, j: int) -> None:
    root_i, root_j = find(parent, i), find(parent, j)
    if root_i != root_j:
        parent[max(root_i, root_j)] = min(root_i, root_j)


def find(parent: dict[int, int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


# ------------------------------------------------------------------------------ what to do

def extra_copies(groups: list[dict], keep: str = "first") -> list[int]:
    """Item indices that `data dedupe --keep first` removes: all but the first of each group."""
    if keep != "first":
        raise ValueError(f"keep={keep!r}: only 'first' (the first copy in upload order) is known.")
    return sorted(index for group in groups for index in group["items"][1:])


def bench_duplicates(images: int = 100_000, copies: int = 1000, seed: int = 0) -> dict:
    """Time `find_duplicates` on `images` synthetic fingerprints (smooth random thumbnails, not
    decoded files) with `copies` planted near copies (brightened, noisy); what it found."""
    import time

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (images, 6, 6), dtype=np.uint8)
    thumbs = np.stack([np.asarray(Image.fromarray(block).resize((THUMB, THUMB),
                                                                Image.Resampling.BICUBIC))
                       for block in coarse])
    originals = rng.choice(images - copies, copies, replace=False)
    noisy = thumbs[originals].astype(np.int16) * 1.1 + rng.normal(0, 2, (copies, THUMB, THUMB))
    thumbs[images - copies:] = np.clip(noisy, 0, 255).astype(np.uint8)
    hashes = np.array([phash(thumb) for thumb in thumbs], np.uint64)
    centres = np.array([phash(CROP_MATRIX @ t.astype(np.float32) @ CROP_MATRIX.T)
                        for t in thumbs], np.uint64)
    gray = thumbs.reshape(images, -1).mean(1, dtype=np.float32)
    prints = Fingerprints([bytes(16 - len(str(i))) + str(i).encode() for i in range(images)],
                          hashes, centres, thumbs, np.stack([gray] * 3, 1))
    start = time.perf_counter()
    groups = find_duplicates(prints)
    seconds = time.perf_counter() - start
    planted = {(int(o), images - copies + k) for k, o in enumerate(originals)}
    found = {(g["items"][0], g["items"][1]) for g in groups if len(g["items"]) == 2}
    return {"images": images, "planted_copies": copies, "seconds": round(seconds, 2),
            "groups_found": len(groups), "planted_found": len(planted & found)}
