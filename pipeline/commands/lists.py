"""Draw a seeded labeled subset of N annotated ids and write the id lists a config names.

  dmt lists --annotated metadata/flickr/flickr_sup_train.txt \\
      --test metadata/flickr/flickr_test.csv --pool metadata/flickr/flickr_144k.txt \\
      -n 256 --out /data/flickr/lists_256
  dmt lists --annotated metadata/vggss/vggss.json --test metadata/vggss/vggss_test.csv \\
      --pool metadata/vggss/vggss_144k.txt -n 2k --from-test --out /data/vggsound/lists_2k

The metadata files are published in the metadata/ folders of the AVSL repositories
(github.com/stoneMo/EZ-VSL: vggss.json, vggss_test.csv, flickr_test.csv, the 144k pools;
github.com/stoneMo/SLAVC: flickr_sup_train.txt); put them where you like.

Writes OUT/labeled.txt, unlabeled.txt, test.txt and lists.json. For one --seed, a smaller -n's
labeled ids are inside a larger one's. See pipeline/data/lists.py for the rules.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.data.formats import AnnotationError
from pipeline.data.id_lists import load_id_list
from pipeline.data.lists import annotated_ids, draw_lists, parse_count, write_lists


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--annotated", required=True,
                        help="the ids with boxes: an id list, a VGG-SS JSON or a Flickr XML folder")
    parser.add_argument("--test", required=True, help="the test id list")
    parser.add_argument("--pool", help="the training pool id list (default: the annotated ids)")
    parser.add_argument("-n", required=True, help="labeled ids to draw: 256, 2k, 4k, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-test", action="store_true",
                        help="draw from the test list's annotated ids and remove them from it "
                             "(VGG-Sound, whose only boxes are its test clips)")
    parser.add_argument("--out", required=True, help="output folder (the config's data.lists)")


def run(args: argparse.Namespace) -> int:
    try:
        n = parse_count(args.n)
        lists = draw_lists(annotated_ids(args.annotated), load_id_list(args.test), n, args.seed,
                           load_id_list(args.pool) if args.pool else None, args.from_test)
    except (AnnotationError, ValueError, FileNotFoundError) as exc:
        print(f"dmt lists: {exc}", file=sys.stderr)
        return 2
    out = write_lists(args.out, lists, {"n": n, "seed": args.seed, "from_test": args.from_test,
                                        "annotated": args.annotated, "test": args.test,
                                        "pool": args.pool or ""})
    print(f"{out}: labeled {len(lists['labeled'])}, unlabeled {len(lists['unlabeled'])}, "
          f"test {len(lists['test'])} (seed {args.seed})")
    return 0
