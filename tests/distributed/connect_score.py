"""Load the best Spark ML model of an experiment through Spark Connect and score a table.

Run as a script (Spark Connect is process-wide in pyspark, so it gets its own process); the
workspace's settings come from the environment (``LAKELOOM_ENGINE=spark``,
``LAKELOOM_SPARK_REMOTE``, ``LAKELOOM_TRACKING_URI``). Prints one JSON line.

    python connect_score.py WORKSPACE EXPERIMENT TABLE
"""

from __future__ import annotations

import json
import os
import sys


def main(root: str, experiment: str, table: str) -> dict[str, object]:
    from lakeloom import Workspace
    from lakeloom.training.spark_ml import load_spark_model, score_spark

    with Workspace.open(root, create=False) as ws:
        best = ws.runs.best(experiment)
        model = load_spark_model(best.tags["lakeloom.model_uri"], ws.engine)
        frame = ws.tables.read(table)
        scored = score_spark(model, frame, keep=["customer_id"])
        rows = scored.where("predicted_label is not null").count()
        return {
            "remote": ws.settings.spark.remote,
            "run_id": best.run_id,
            "model": best.model,
            "table_rows": frame.count(),
            "scored_rows": rows,
            "columns": scored.columns,
        }


if __name__ == "__main__":
    out = main(*sys.argv[1:4])
    print(json.dumps(out), flush=True)
    os._exit(0)  # skip interpreter teardown (delta-rs + pyarrow, see the project notes)
