from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from swagbench.bench.answer.confident import find_label_issues
from swagbench.bench.answer.metrics import detection_scores
from swagbench.bench.config import CleanlabConfig
from swagbench.bench.dataset import inject_label_noise

RECALL_FLOOR = 0.6  # confident learning on a well-separated set with 20% noise finds most flips
PRECISION_FLOOR = 0.6


def test_label_issue_recall_on_synthetic_noisy_set():
    x, y_true = make_classification(
        n_samples=1500,
        n_features=10,
        n_informative=6,
        n_classes=4,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    y = inject_label_noise(y_true, 4, noise_rate=0.2, seed=0)
    truth = y != y_true
    assert 0.1 < truth.mean() < 0.3
    probs = cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=5, method="predict_proba")
    cfg = CleanlabConfig()
    issues, quality = find_label_issues(y, probs, cfg.filter_by, cfg.quality_method)
    scores = detection_scores(issues, truth)
    assert scores["recall"] >= RECALL_FLOOR, scores
    assert scores["precision"] >= PRECISION_FLOOR, scores
    # Label quality ranks true errors below clean labels on average.
    assert quality[truth].mean() < quality[~truth].mean()
