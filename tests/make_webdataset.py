"""Writes COCO-MINI's val images and first captions as webdataset tars in img2dataset's
layout, and the same pairs as JSONL with image paths, for tests/inputs.rs.

Usage: make_webdataset.py COCO_MINI_DIR OUT_DIR

OUT_DIR/pairs.jsonl            the pairs, images as files on disk
OUT_DIR/wds/0000{0..2}.tar     KEY.jpg, KEY.txt, KEY.json per sample (Python's tarfile)
OUT_DIR/wds-parquet/           the same tars, each with img2dataset's parquet beside it
                               (one more row per parquet: a failed download)
OUT_DIR/wds-bad/               00000.tar: sample 0 has no image, sample 1's image is not
                               an image; 00001.tar: cut off inside a member
Prints what the damaged tars should give, as JSON.
"""
import io
import json
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

coco, out = Path(sys.argv[1]), Path(sys.argv[2])
captions = json.loads((coco / "annotations/captions_val2017.json").read_text())
instances = json.loads((coco / "annotations/instances_val2017.json").read_text())
names = {c["id"]: c["name"] for c in instances["categories"]}
objects = defaultdict(set)
for a in instances["annotations"]:
    objects[a["image_id"]].add(names[a["category_id"]])
first_caption = {}
for a in captions["annotations"]:
    first_caption.setdefault(a["image_id"], a["caption"].strip())

samples = []
for image in captions["images"]:
    key = f"{len(samples):09d}"
    samples.append({
        "key": key,
        "caption": first_caption[image["id"]],
        "path": str((coco / "val2017" / image["file_name"]).resolve()),
        "objects": sorted(objects[image["id"]]),
        "url": image["coco_url"],
    })
per_tar = 30
tars = [samples[i:i + per_tar] for i in range(0, len(samples), per_tar)]

with open(out / "pairs.jsonl", "w") as f:
    for s in samples:
        f.write(json.dumps({"image_id": s["key"], "caption_id": s["key"], "caption": s["caption"],
                            "image_path": s["path"], "objects": s["objects"]}) + "\n")


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tar(path, group, image_of=lambda s: Path(s["path"]).read_bytes()):
    with tarfile.open(path, "w") as tar:
        for s in group:
            image = image_of(s)
            if image is not None:
                add(tar, s["key"] + ".jpg", image)
            add(tar, s["key"] + ".txt", s["caption"].encode())
            meta = {"key": s["key"], "caption": s["caption"], "url": s["url"],
                    "status": "success", "objects": s["objects"]}
            add(tar, s["key"] + ".json", json.dumps(meta).encode())


for folder in ["wds", "wds-parquet", "wds-bad"]:
    (out / folder).mkdir(parents=True, exist_ok=True)
for n, group in enumerate(tars):
    write_tar(out / "wds" / f"{n:05d}.tar", group)
    write_tar(out / "wds-parquet" / f"{n:05d}.tar", group)
    rows = [{"url": s["url"], "key": s["key"], "caption": s["caption"], "status": "success",
             "error_message": None, "objects": s["objects"]} for s in group]
    rows.append({"url": "http://example.invalid/x.jpg", "key": f"9{n:08d}", "caption": "gone",
                 "status": "failed_to_download", "error_message": "404", "objects": []})
    pq.write_table(pa.Table.from_pylist(rows), out / "wds-parquet" / f"{n:05d}.parquet")

no_image, not_an_image = tars[0][0]["key"], tars[0][1]["key"]
write_tar(out / "wds-bad" / "00000.tar", tars[0],
          lambda s: None if s["key"] == no_image
          else b"this is not a jpeg" * 10 if s["key"] == not_an_image
          else Path(s["path"]).read_bytes())
write_tar(out / "wds-bad" / "00001.tar", tars[1])
whole = (out / "wds-bad" / "00001.tar").read_bytes()
with tarfile.open(out / "wds-bad" / "00001.tar") as tar:
    members = tar.getmembers()
# Cut inside the data of the 6th sample's image: samples 0-4 stay whole.
cut_at = members[15].offset_data + members[15].size // 2
(out / "wds-bad" / "00001.tar").write_bytes(whole[:cut_at])
print(json.dumps({
    "samples": len(samples),
    "no_image": no_image,
    "not_an_image": not_an_image,
    "whole_in_cut_tar": 5,
    "bad_good": len(tars[0]) - 2 + 5,
}))
