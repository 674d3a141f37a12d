"""A custom executor written with the unmodified pymesos executor driver.

It reports TASK_RUNNING, answers every framework message ``X`` with ``echo:X``,
and finishes the task when told ``finish``.
"""

import sys
import threading

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


class EchoExecutor(Executor):
    def __init__(self) -> None:
        self.task = None

    def launchTask(self, driver, task):
        self.task = task
        driver.sendStatusUpdate({"task_id": task["task_id"], "state": "TASK_RUNNING"})

    def frameworkMessage(self, driver, message):
        data = decode_data(message)
        driver.sendFrameworkMessage(encode_data(b"echo:" + data))
        if data == b"finish" and self.task is not None:
            driver.sendStatusUpdate({"task_id": self.task["task_id"], "state": "TASK_FINISHED"})
            threading.Timer(0.5, driver.stop).start()

    def shutdown(self, driver):
        driver.stop()


if __name__ == "__main__":
    driver = MesosExecutorDriver(EchoExecutor(), use_addict=False)
    driver.run()
    sys.exit(0)
