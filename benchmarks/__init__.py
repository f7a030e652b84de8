"""switchboard's performance benchmarks (SPEC §5): ``python -m benchmarks`` (``make bench``).

Each benchmark measures the product against a baseline in the same run and reports ratios:

* :mod:`benchmarks.join` -- time from ``call.join()`` to the remote tone at the speaker, against a bare
  aiortc peer-to-peer connection.
* :mod:`benchmarks.switch` -- ``client.switch_focus()``: how fast the old room goes silent and the new
  one becomes audible, read from the speaker's sample timeline.
* :mod:`benchmarks.held` -- CPU of one client process holding 1 active + 20 suspended calls against the
  same process with the active call alone.
* :mod:`benchmarks.browser` -- mouth-to-ear between a Chromium page and a Python client through the
  SFU, both ways, beside Python-to-Python in the same run.
* :mod:`benchmarks.sfu` -- audio down-tracks the SFU forwards per core at under 1 % loss, and
  mouth-to-ear latency through the SFU.

The server, the remote bots and the load generators run in their own processes (``benchmarks.server``,
``benchmarks.bots``, ``benchmarks.loadgen``, ``benchmarks.p2p_peer``); results go to
``bench-results.json`` at the repository root. See ``docs/performance.md``.
"""
