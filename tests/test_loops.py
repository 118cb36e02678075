"""PerLoop: one value per running event loop, forgotten once that loop closed."""

import asyncio

from tutorbook.loops import PerLoop


def test_each_loop_gets_its_own_value_and_keeps_it():
    made = []
    per_loop = PerLoop(lambda: made.append(object()) or made[-1])

    async def twice():
        return per_loop.get(), per_loop.get()

    first, again = asyncio.run(twice())
    other, _ = asyncio.run(twice())
    assert first is again and other is not first and len(made) == 2


def test_a_closed_loops_value_is_forgotten_when_another_loop_asks():
    forgotten = []
    per_loop = PerLoop(list, forget=forgotten.append)

    async def take():
        value = per_loop.get()
        value.append(len(per_loop.loops()))
        return value

    first = asyncio.run(take())
    second = asyncio.run(take())  # the first loop is closed by now
    assert forgotten == [first] and second == [1] and len(per_loop.loops()) == 1


def test_pop_hands_the_running_loops_value_back_once():
    per_loop = PerLoop(dict)

    async def use_then_pop():
        value = per_loop.get()
        return per_loop.pop() is value, per_loop.pop(), per_loop.loops()

    assert asyncio.run(use_then_pop()) == (True, None, [])
