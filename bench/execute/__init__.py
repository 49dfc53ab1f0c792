"""Where a trial runs: its worker processes (local or Ray), the loop a worker runs, and the finishing step."""
