from podlink.streams.worker.app import Worker
from podlink.streams.worker.settings import Settings


def test_a_worker_is_not_ready_before_its_tables_are_recovered(tmp_path):
    worker = Worker(Settings(store="memory", data_dir=tmp_path))
    assert not worker.is_ready()
    worker.app.tables.recovery.completed.set()  # what Faust does when recovery ends
    assert worker.is_ready()
    worker.app.rebalancing = True
    assert not worker.is_ready()
