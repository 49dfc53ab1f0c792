"""What the measurements answer: metrics, confident learning, the fidelity gate, projection to the target size,
``auto`` choices and the recommendation."""
