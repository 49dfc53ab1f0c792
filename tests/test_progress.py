"""Progress output: plain milestone lines when the stream is not a terminal, a tqdm bar when it is."""

import io

from swagbench.bench.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_milestone_and_no_carriage_returns():
    log = io.StringIO()
    with Progress(20, "00-eager-fp32", "sample", stream=log) as bar:
        for n in range(1, 21):
            bar.update_to(n)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split(" (")[0] for line in lines] == [
        "swagbench: 00-eager-fp32: started",
        "swagbench: 00-eager-fp32: 5/20 samples",
        "swagbench: 00-eager-fp32: 10/20 samples",
        "swagbench: 00-eager-fp32: 15/20 samples",
        "swagbench: 00-eager-fp32: done 20/20 samples",
    ]


def test_a_stopped_task_says_where_and_an_idle_one_says_nothing():
    log = io.StringIO()
    with Progress(8, "train", "epoch", stream=log, quiet_until_update=True):
        pass  # every posterior came from the cache
    assert log.getvalue() == ""
    with Progress(8, "01-openvino-bf16", "sample", stream=log) as bar:
        bar.update_to(3)
    assert log.getvalue().splitlines()[-1].startswith("swagbench: 01-openvino-bf16: stopped at 3/8 samples")


def test_a_terminal_gets_a_bar():
    term = _Terminal()
    with Progress(4, "00-eager-fp32", "sample", stream=term) as bar:
        bar.update_to(4)
    assert "\r" in term.getvalue() and "4/4" in term.getvalue() and "swagbench:" not in term.getvalue()
