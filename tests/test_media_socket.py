"""The socket's life on a real event loop: ordered writes from any thread, deadlines, loop lag."""

import asyncio
import threading
import time

from ivr.media_socket import Deadline, LagProbe, LoopSocket, percentile


def run(coroutine):
    return asyncio.run(coroutine)


def test_writes_from_other_threads_keep_their_order_and_end_with_the_close():
    sent = []

    async def main():
        async def send(message):
            sent.append(message)
        socket = LoopSocket(asyncio.get_running_loop(), send, None)
        writers = [threading.Thread(target=lambda n=n: [socket.send_text(f"{n}:{i}")
                                                        for i in range(50)])
                   for n in range(4)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        socket.close(1008, "done")
        assert not socket.send_text("too late")  # nothing is queued after the close
        await asyncio.wait_for(socket.sender, 10)
    run(main())
    texts = [m["text"] for m in sent if m["type"] == "websocket.send"]
    assert len(texts) == 200 and sent[-1] == {"type": "websocket.close", "code": 1008,
                                              "reason": "done"}
    for n in range(4):  # each thread's messages in the order it wrote them
        mine = [t for t in texts if t.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(50)]


def test_a_peer_gone_mid_write_closes_the_socket_quietly():
    async def main():
        async def send(message):
            raise ConnectionResetError("peer gone")
        socket = LoopSocket(asyncio.get_running_loop(), send, None)
        socket.send_text("hello")
        await asyncio.wait_for(socket.sender, 10)
        return socket.closed
    assert run(main())


def test_a_deadline_fires_once_when_due_and_not_before():
    fired = []

    async def main():
        loop = asyncio.get_running_loop()
        due = {"at": time.monotonic() + 60}
        deadline = Deadline(loop, lambda: (due["at"], "quiet"), fired.append)
        await asyncio.sleep(0.6)  # one check has run: not due yet
        assert fired == []
        due["at"] = time.monotonic()  # the peer went quiet
        while not fired:
            await asyncio.sleep(0.05)
        deadline.cancel()
    run(main())
    assert fired == ["quiet"]


def test_the_lag_probe_counts_ticks_since_a_snapshot():
    async def main():
        probe = LagProbe()
        probe.start(asyncio.get_running_loop())
        before = probe.snapshot()
        while sum(probe.since(before).values()) < 10:
            await asyncio.sleep(0.02)
        time.sleep(0.2)  # the loop is blocked: the next tick is about 200 ms late
        await asyncio.sleep(0.05)
        probe.handle.cancel()
        return probe.since(before)
    lag = run(main())
    assert max(lag) >= 150 and percentile(lag, 50) < max(lag)


def test_percentile_of_a_histogram():
    assert percentile({1: 98, 50: 1, 300: 1}, 99) == 50
    assert percentile({}, 99) == 0
