"""Tasks that serve a body of code, and the body's own error kept as it is.

Since trio 0.25 a nursery wraps whatever leaves it in an ExceptionGroup, even
the error that the body of its `async with` raised. Where the nursery's tasks
only serve that body (a reader of a node's replies, a node's receive loops),
a caller wants the body's error itself: an OSError to print in one line, not a
group holding one. `open_service_nursery()` gives exactly that; an error of a
service task still comes out as trio reports it, since that is a bug.
"""

from contextlib import asynccontextmanager

import trio


@asynccontextmanager
async def open_service_nursery():
    """A nursery whose tasks are cancelled when the body ends; the body's exception comes out unwrapped."""
    failure = None
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        except BaseException as error:  # noqa: B902 -- KeyboardInterrupt too: Ctrl-C is the body's
            if only(error, trio.Cancelled):
                raise  # belongs to a cancel scope (an inner nursery's come as a group), which must see it pass
            failure = error
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure


def only(group, kind):
    """Whether an exception, or every exception in a group, is of the given kind."""
    if isinstance(group, BaseExceptionGroup):
        return all(only(inner, kind) for inner in group.exceptions)
    return isinstance(group, kind)
