#!/usr/bin/env bash
# The win-probability model beside scikit-learn, on the same rows in the same run: bids drawn from a
# known logistic world (sdp_core::synthetic), the same features hashed into 2^18 weights (campaign,
# domain, creative, category and hour one-hot; log1p of the offered price), L2-regularised logistic
# regression fitted by L-BFGS on both sides. Reports training time and rows/s, predictions/s on one
# core, the p99 of one sdp score, and held-out AUC (and the generating model's AUC).
# Usage: bench/model.sh [TRAIN_ROWS] [TEST_ROWS]   (defaults 200,000 and 100,000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools
.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
n_train=${1:-200000}
n_test=${2:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --locked -p sdp-bench --bin model-bench >&2
target/release/model-bench generate "$work" "$n_train" "$n_test"
target/release/model-bench run "$work"
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python - "$work" <<'PY'
import sys, time, math
import numpy as np
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, log_loss

work = sys.argv[1]
def load(name):
    rows, labels = [], []
    with open(f"{work}/{name}.csv") as f:
        next(f)
        for line in f:
            c, d, cr, ca, price, hour, label, _ = line.rstrip("\n").split(",")
            rows.append([f"campaign_item_id={c}", f"domain={d}", f"creative_id={cr}",
                         f"creative_category={ca}", f"hour={hour}", ("win_price", math.log1p(float(price)))])
            labels.append(int(label))
    return rows, np.array(labels)

def features(rows):
    return [{k if isinstance(k, str) else k[0]: (1.0 if isinstance(k, str) else k[1]) for k in r} for r in rows]

train_rows, y_train = load("train")
test_rows, y_test = load("test")
hasher = FeatureHasher(n_features=2**18, alternate_sign=False)
t = time.perf_counter()
X_train = hasher.transform(features(train_rows))
# sdp's penalty is l2/2 * |w|^2 per mean example with l2 = 1e-4: C = 1 / (l2 * n).
model = LogisticRegression(solver="lbfgs", C=1.0 / (1e-4 * len(y_train)), max_iter=200)
model.fit(X_train, y_train)
train_s = time.perf_counter() - t
X_test = hasher.transform(features(test_rows))
t = time.perf_counter()
scores = model.predict_proba(X_test)[:, 1]
predict_s = time.perf_counter() - t
print(f"scikit-learn train_s={train_s:.3f} train_rows_per_s={len(y_train)/train_s:.0f} "
      f"predict_per_s={len(y_test)/predict_s:.0f} (batch, features pre-hashed) "
      f"auc={roc_auc_score(y_test, scores):.4f} log_loss={log_loss(y_test, scores):.4f}")
PY
