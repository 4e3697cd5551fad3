"""The SSE parser: any split of the stream, every line ending, and arrival stamps."""
from __future__ import annotations

import json

import pytest

from pytest_inferencemax.measure.sse import DONE, DONE_BYTES, SSEEvent, SSEParser

# A realistic vLLM /v1/completions stream with stream_options.include_usage: three token
# events (one with non-ASCII text, so splits land inside multi-byte UTF-8 characters),
# the usage-only event, then [DONE].
VLLM_EVENTS = [
    {"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "smollm2",
     "choices": [{"index": 0, "text": "Hello", "logprobs": None, "finish_reason": None,
                  "stop_reason": None}], "usage": None},
    {"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "smollm2",
     "choices": [{"index": 0, "text": " wörld €", "logprobs": None, "finish_reason": None,
                  "stop_reason": None}], "usage": None},
    {"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "smollm2",
     "choices": [{"index": 0, "text": "!", "logprobs": None, "finish_reason": "length",
                  "stop_reason": None}], "usage": None},
    {"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "smollm2",
     "choices": [], "usage": {"prompt_tokens": 128, "total_tokens": 131, "completion_tokens": 3}},
]
VLLM_DATA = [json.dumps(e, ensure_ascii=False) for e in VLLM_EVENTS] + [DONE]
VLLM_STREAM = "".join(f"data: {d}\n\n" for d in VLLM_DATA).encode("utf-8")


def feed_all(parser: SSEParser, chunks: list[bytes], start: float = 0.0) -> list[SSEEvent]:
    """Feed chunks with arrival times start, start+1, ...; then close at the next time."""
    events: list[SSEEvent] = []
    t = start
    for chunk in chunks:
        events += parser.feed(chunk, t)
        t += 1.0
    events += parser.close(t)
    return events


def datas(events: list[SSEEvent]) -> list[str]:
    return [e.data for e in events]


# --- whole streams ---------------------------------------------------------------------------


def test_whole_stream_in_one_read():
    parser = SSEParser()
    events = parser.feed(VLLM_STREAM, 5.0)
    assert datas(events) == VLLM_DATA
    assert [e.arrived for e in events] == [5.0] * 5
    assert parser.close(6.0) == []


def test_every_two_way_split_gives_the_same_events():
    # Every byte position, including inside the multi-byte characters of " wörld €".
    assert len(VLLM_STREAM) != len(VLLM_STREAM.decode("utf-8"))  # really has multi-byte characters
    for cut in range(len(VLLM_STREAM) + 1):
        parser = SSEParser()
        first = parser.feed(VLLM_STREAM[:cut], 1.0)
        second = parser.feed(VLLM_STREAM[cut:], 2.0)
        rest = parser.close(3.0)
        assert rest == [], cut
        got = first + second
        assert datas(got) == VLLM_DATA, cut
        # An event whose terminating blank line lies wholly in the first read arrived at 1.0.
        ends = []
        pos = 0
        for d in VLLM_DATA:
            pos += len(f"data: {d}\n\n".encode("utf-8"))
            ends.append(pos)
        assert [e.arrived for e in got] == [1.0 if end <= cut else 2.0 for end in ends], cut


def test_byte_by_byte_stamps_each_event_with_the_read_of_its_last_byte():
    parser = SSEParser()
    events = []
    for i in range(len(VLLM_STREAM)):
        events += parser.feed(VLLM_STREAM[i:i + 1], float(i))
    assert parser.close(-1.0) == []
    assert datas(events) == VLLM_DATA
    # The event is complete with its second "\n", the last byte of its block.
    ends, pos = [], 0
    for d in VLLM_DATA:
        pos += len(f"data: {d}\n\n".encode("utf-8"))
        ends.append(float(pos - 1))
    assert [e.arrived for e in events] == ends


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_two_way_split_for_each_line_ending(eol):
    stream = "".join(f"data: {d}{eol}{eol}" for d in VLLM_DATA).encode("utf-8")
    for cut in range(len(stream) + 1):
        events = feed_all(SSEParser(), [stream[:cut], stream[cut:]])
        assert datas(events) == VLLM_DATA, (eol, cut)


def test_several_three_way_splits_of_a_crlf_stream():
    stream = "".join(f"data: {d}\r\n\r\n" for d in VLLM_DATA[:2]).encode("utf-8")
    n = len(stream)
    for a in range(0, n + 1, 3):
        for b in range(a, n + 1, 5):
            events = feed_all(SSEParser(), [stream[:a], stream[a:b], stream[b:]])
            assert datas(events) == VLLM_DATA[:2], (a, b)


def test_several_events_in_one_read():
    parser = SSEParser()
    events = parser.feed(b"data: a\n\ndata: b\n\ndata: c\n\ndata: d", 7.0)
    assert datas(events) == ["a", "b", "c"]
    assert all(e.arrived == 7.0 for e in events)
    # "d" waits for its blank line.
    assert datas(parser.feed(b"\n\n", 8.0)) == ["d"]


# --- line endings ----------------------------------------------------------------------------


def test_crlf_line_endings():
    events = feed_all(SSEParser(), [b"data: one\r\n\r\ndata: two\r\n\r\n"])
    assert datas(events) == ["one", "two"]


def test_cr_line_endings():
    events = feed_all(SSEParser(), [b"data: one\r\rdata: two\r\r"])
    assert datas(events) == ["one", "two"]


def test_mixed_line_endings():
    events = feed_all(SSEParser(), [b"data: one\r\n\ndata: two\r\rdata: three\n\r\n"])
    assert datas(events) == ["one", "two", "three"]


def test_crlf_split_between_two_reads_is_one_line_end():
    parser = SSEParser()
    # The CR ends the data line; the LF in the next read belongs to it and is not a blank line.
    assert parser.feed(b"data: x\r", 1.0) == []
    assert parser.feed(b"\n", 2.0) == []
    events = parser.feed(b"\r\n", 3.0)
    assert datas(events) == ["x"]
    assert events[0].arrived == 3.0


def test_crlf_blank_line_split_between_two_reads_dispatches_once():
    parser = SSEParser()
    first = parser.feed(b"data: x\r\n\r", 1.0)
    # The lone CR at the end already completes the blank line: the event is out at 1.0.
    assert datas(first) == ["x"]
    assert first[0].arrived == 1.0
    # The LF that finishes the CRLF is swallowed, not taken as a second blank line.
    assert parser.feed(b"\ndata: y\r\n", 2.0) == []
    assert datas(parser.feed(b"\r\n", 3.0)) == ["y"]
    assert parser.close(4.0) == []


def test_cr_then_lf_in_the_same_read_is_one_line_end():
    parser = SSEParser()
    assert datas(parser.feed(b"data: x\r\n\r\n", 1.0)) == ["x"]


def test_empty_read_between_cr_and_lf_changes_nothing():
    # An empty read is a legal (if pointless) split of the stream: "data: x\r" + "" + "\n"
    # is still one CRLF line end, so no event may be dispatched before the blank line.
    parser = SSEParser()
    assert parser.feed(b"data: x\r", 1.0) == []
    assert parser.feed(b"", 2.0) == []
    assert parser.feed(b"\n", 3.0) == []
    assert datas(parser.feed(b"data: y\r\n\r\n", 4.0)) == ["x\ny"]


# --- fields ----------------------------------------------------------------------------------


def test_comment_lines_are_ignored():
    stream = b": keepalive\n\ndata: a\n: inside an event\ndata: b\n\n:\n\n"
    events = feed_all(SSEParser(), [stream])
    assert datas(events) == ["a\nb"]


def test_comment_only_block_dispatches_nothing():
    parser = SSEParser()
    assert parser.feed(b": keepalive\n\n: keepalive\n\n", 1.0) == []
    assert parser.close(2.0) == []


def test_data_with_and_without_the_space():
    events = feed_all(SSEParser(), [b"data:nospace\n\ndata: one space\n\ndata:  two spaces\n\n"])
    # Only one leading space is dropped.
    assert datas(events) == ["nospace", "one space", " two spaces"]


def test_data_value_keeps_later_colons():
    events = feed_all(SSEParser(), [b'data: {"a": "b:c"}\n\n'])
    assert datas(events) == ['{"a": "b:c"}']


def test_multi_line_data_joined_with_lf():
    events = feed_all(SSEParser(), [b"data: first\ndata: second\ndata:third\n\n"])
    assert datas(events) == ["first\nsecond\nthird"]


def test_empty_data_line_contributes_an_empty_line():
    events = feed_all(SSEParser(), [b"data: a\ndata:\ndata: b\n\n"])
    assert datas(events) == ["a\n\nb"]


def test_other_fields_are_ignored():
    stream = b"event: message\nid: 42\nretry: 1000\ndata: payload\n\nevent: ping\n\n"
    events = feed_all(SSEParser(), [stream])
    assert datas(events) == ["payload"]


def test_blank_lines_without_data_dispatch_nothing():
    parser = SSEParser()
    assert parser.feed(b"\n\n\n\r\n\r", 1.0) == []
    assert datas(parser.feed(b"data: a\n\n\n\n", 2.0)) == ["a"]


def test_done_event():
    events = feed_all(SSEParser(), [b"data: {}\n\ndata: [DONE]\n\n"])
    assert [e.raw == DONE_BYTES for e in events] == [False, True]
    assert events[1].data == "[DONE]" == DONE
    assert SSEEvent(b"[DONE] ", 0.0).raw != DONE_BYTES
    assert SSEEvent(b"[done]", 0.0).raw != DONE_BYTES


def test_usage_only_event():
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}\n\n'
    events = feed_all(SSEParser(), [usage])
    assert len(events) == 1
    obj = json.loads(events[0].data)
    assert obj["choices"] == []
    assert obj["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert events[0].raw != DONE_BYTES


def test_invalid_utf8_is_replaced_not_raised():
    events = feed_all(SSEParser(), [b"data: a\xffb\n\n"])
    assert datas(events) == ["a\ufffdb"]


# --- end of stream ---------------------------------------------------------------------------


def test_close_delivers_trailing_event_without_blank_line():
    parser = SSEParser()
    assert datas(parser.feed(b"data: a\n\ndata: b", 1.0)) == ["a"]
    events = parser.close(9.0)
    assert datas(events) == ["b"]
    assert events[0].arrived == 9.0


def test_close_delivers_trailing_event_with_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: b\ndata: c\n", 1.0) == []
    events = parser.close(2.0)
    assert datas(events) == ["b\nc"]
    assert events[0].arrived == 2.0


def test_close_with_trailing_comment_or_nothing():
    parser = SSEParser()
    parser.feed(b"data: a\n\n: keepalive", 1.0)
    assert parser.close(2.0) == []
    assert SSEParser().close(0.0) == []


def test_close_twice_delivers_once():
    parser = SSEParser()
    parser.feed(b"data: a", 1.0)
    assert datas(parser.close(2.0)) == ["a"]
    assert parser.close(3.0) == []


# --- arrival stamps --------------------------------------------------------------------------


def test_event_carries_arrival_of_the_read_that_completed_it():
    parser = SSEParser()
    assert parser.feed(b"da", 10.0) == []
    assert parser.feed(b"ta: {\"x\": 1}", 11.0) == []
    assert parser.feed(b"\n", 12.0) == []
    events = parser.feed(b"\n", 13.0)
    assert events == [SSEEvent(b'{"x": 1}', 13.0)]


def test_events_completed_by_one_read_share_its_stamp_and_the_rest_waits():
    parser = SSEParser()
    assert parser.feed(b"data: a\n", 1.0) == []
    events = parser.feed(b"\ndata: b\n\ndata: c\n", 2.0)
    assert events == [SSEEvent(b"a", 2.0), SSEEvent(b"b", 2.0)]
    assert parser.feed(b"\n", 3.0) == [SSEEvent(b"c", 3.0)]


def test_realistic_token_by_token_arrival():
    # One read per event, as vLLM flushes them: each event gets its own read's time.
    parser = SSEParser()
    times = [100.0, 100.25, 100.5, 100.75, 101.0]
    events = []
    for d, t in zip(VLLM_DATA, times):
        events += parser.feed(f"data: {d}\n\n".encode("utf-8"), t)
    assert [(e.data, e.arrived) for e in events] == list(zip(VLLM_DATA, times))
    assert [json.loads(e.data)["choices"][0]["text"] for e in events[:3]] == ["Hello", " wörld €", "!"]


@pytest.mark.parametrize("seed", range(20))
def test_fast_path_and_general_path_agree_on_any_split(seed):
    # The LF-only fast path must give exactly what the line-by-line path gives, whatever the reads.
    import random
    rng = random.Random(seed)
    stream = b"".join(rng.choice([b"data: {\"i\": %d}\n\n" % i, b": keep-alive\n\n", b"event: x\ndata: %d\n\n" % i,
                                  b"data: a\ndata: b\n\n", b"data:%d\n\n" % i, b"\n"]) for i in range(60))
    cuts = sorted(rng.sample(range(1, len(stream)), 15))
    fast, general = SSEParser(), SSEParser()
    got_fast, got_general = [], []
    for i, (a, b) in enumerate(zip([0] + cuts, cuts + [len(stream)])):
        got_fast += fast.feed(stream[a:b], float(i))
        got_general += general._feed_general(stream[a:b], float(i))
    assert got_fast == got_general and got_fast


# --- lines the bounty client cannot read -------------------------------------------------------------
# It strips each line, removes "data: " (with its space), skips "[DONE]" and hands the rest to json.loads.


@pytest.mark.parametrize("stream, unreadable", [
    (VLLM_STREAM, 0),
    (VLLM_STREAM.replace(b"\n\n", b"\r\n\r\n"), 0),  # CRLF: stripped there
    (b": ping\n\n" + VLLM_STREAM, 1),  # a comment
    (b"event: completion\n" + VLLM_STREAM, 1),  # another field
    (b"id: 7\nretry: 10\n\n" + VLLM_STREAM, 2),
    (VLLM_STREAM.replace(b"data: ", b"data:", 1), 1),  # no space after the colon
    (b"data:\n\n" + VLLM_STREAM, 1),  # nothing after it
    (b"   \n\n" + VLLM_STREAM, 0),  # blank once stripped
])
def test_lines_the_bounty_client_cannot_read_are_counted_whatever_the_split(stream, unreadable):
    for chunks in ([stream], [stream[i:i + 7] for i in range(0, len(stream), 7)]):
        parser = SSEParser()
        events = feed_all(parser, chunks)
        assert parser.unreadable == unreadable
        assert [json.loads(d) for d in datas(events) if d != DONE][0]["id"] == "cmpl-1"  # the events still come
    if unreadable:
        assert parser.unreadable_example is not None


def test_an_empty_data_buffer_dispatches_nothing():
    assert datas(feed_all(SSEParser(), [b"data:\n\ndata: x\n\n"])) == ["x"]
