"""Small pieces every il_ros node shares: the main() shutdown form and parameter declaration."""
from __future__ import annotations

import array
import math
import os
import re
import signal
import sys
import threading

os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')

import rclpy  # noqa: E402
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange,  # noqa: E402
                                ParameterDescriptor, SetParametersResult)
from rclpy.exceptions import (InvalidParameterTypeException,  # noqa: E402
                              InvalidParameterValueException)
from rclpy.executors import ExternalShutdownException  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import (QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile,  # noqa: E402
                       QoSReliabilityPolicy, qos_profile_sensor_data)

SENSOR_QOS = qos_profile_sensor_data
"""Best effort, keep last 5: camera images and joint states."""

COMMAND_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1,
                         reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.VOLATILE)
"""Reliable with a shallow queue: only the newest command matters."""

STATE_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10,
                       reliability=QoSReliabilityPolicy.RELIABLE,
                       durability=QoSDurabilityPolicy.VOLATILE)
"""Reliable, small queue: low-rate state and status topics."""


_EMPTY_ARRAY_TYPES = {
    'string': Parameter.Type.STRING_ARRAY,
    'double': Parameter.Type.DOUBLE_ARRAY,
    'integer': Parameter.Type.INTEGER_ARRAY,
    'bool': Parameter.Type.BOOL_ARRAY,
}


class ParameterError(ValueError):
    """A node parameter holds a value the node cannot run with.

    The message names the parameter, the value and what is allowed; :func:`run` prints it
    as one line and exits with code 2, as a command does for a bad argument.
    """


def check_value(name: str, value, *, min=None, max=None, min_exclusive: bool = False,
                choices=None, finite: bool = True):
    """Return ``value`` if it is allowed, else raise :class:`ParameterError` naming it.

    ``min``/``max`` bound numbers (``min_exclusive``: the bound itself is refused),
    ``choices`` lists the allowed values, and ``finite`` refuses NaN and infinities in
    floating-point values. Lists are checked element by element.
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if choices is not None and v not in choices:
            raise ParameterError(f'parameter {name}={value!r}: must be one of {list(choices)}')
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if finite and isinstance(v, float) and not math.isfinite(v):
            raise ParameterError(f'parameter {name}={value!r}: must be a finite number')
        if min is not None and (v < min or (min_exclusive and v == min)):
            rel = '>' if min_exclusive else '>='
            raise ParameterError(f'parameter {name}={value!r}: must be {rel} {min}')
        if max is not None and v > max:
            raise ParameterError(f'parameter {name}={value!r}: must be <= {max}')
    return value


def declare(node: Node, name: str, default, description: str, read_only: bool = False,
            array_type: str | None = None, **limits):
    """Declare one parameter with a description and return its (checked) value.

    An empty-list default has no type of its own in rclpy (it would become a byte array),
    so such a parameter names its element type: ``array_type='string'|'double'|...``;
    left unset it reads as ``[]``. ``limits`` (``min``, ``max``, ``min_exclusive``,
    ``choices``, ``finite``) are checked by :func:`check_value` at start-up and written into
    the description; a number's ``min``/``max`` also become the descriptor's
    ``floating_point_range``/``integer_range`` (step 0: continuous), so ``ros2 param
    describe`` shows them and rclpy refuses a run-time set outside them. ``read_only``: the
    node reads the value at start-up only, and rclpy refuses every later set. A writable
    parameter with limits is checked again on each set (:func:`_refuse_bad_sets`, one
    callback per node): an exclusive minimum, a choice, a list's elements and NaN are beyond
    what a range expresses.
    """
    text = f'{description} [{_limits_text(limits)}]' if limits else description

    def desc(with_range: bool) -> ParameterDescriptor:
        return ParameterDescriptor(description=text, read_only=read_only,
                                   additional_constraints=_constraints_text(default, limits),
                                   **(param_range(default, limits) if with_range else {}))
    try:
        try:
            value = _declare(node, name, default, desc(True), array_type)
        except InvalidParameterValueException:
            # rclpy refused a start-up value outside the range: declare it without one to
            # read the value, so that check_value names it in the usual line.
            value = _declare(node, name, default, desc(False), array_type)
            check_value(name, value, **limits)
            raise ParameterError(f'parameter {name}={value!r}: must be within '
                                 f'[{_limits_text(limits)}]') from None
    except InvalidParameterTypeException as e:
        raise ParameterError(_type_error(name, str(e))) from None
    if limits:
        check_value(name, value, **limits)
        if not read_only:
            _writable_limits(node)[name] = limits
    return value


def _declare(node: Node, name: str, default, desc: ParameterDescriptor, array_type):
    if isinstance(default, list) and not default:
        if array_type not in _EMPTY_ARRAY_TYPES:
            raise ValueError(f'parameter {name}: an empty-list default needs array_type, '
                             f'one of {sorted(_EMPTY_ARRAY_TYPES)}')
        value = node.declare_parameter(name, _EMPTY_ARRAY_TYPES[array_type], desc).value
        return [] if value is None else list(value)
    return node.declare_parameter(name, default, desc).value


def param_range(default, limits: dict) -> dict:
    """The descriptor fields for ``limits`` of a parameter whose default is ``default``.

    ``{'floating_point_range': [...]}`` for a float, ``{'integer_range': [...]}`` for an
    int, with step 0 (continuous); an open side is +-inf (float) or the int64 limit. Empty
    for other types (strings, booleans, lists: ROS ranges hold scalars only) and for limits
    without ``min``/``max`` (numeric ``choices`` give their span). An exclusive minimum is
    the range's ``from_value``: a range is always inclusive, so :func:`check_value` refuses
    the bound itself.
    """
    lo, hi = limits.get('min'), limits.get('max')
    choices = limits.get('choices')
    if lo is None and hi is None and choices and all(isinstance(c, (int, float)) for c in choices):
        lo, hi = min(choices), max(choices)       # numeric choices: their span
    if (lo is None and hi is None) or isinstance(default, bool):
        return {}
    if isinstance(default, float):
        return {'floating_point_range': [FloatingPointRange(
            from_value=-math.inf if lo is None else float(lo),
            to_value=math.inf if hi is None else float(hi), step=0.0)]}
    if isinstance(default, int):
        return {'integer_range': [IntegerRange(
            from_value=-2 ** 63 if lo is None else math.ceil(lo),
            to_value=2 ** 63 - 1 if hi is None else math.floor(hi), step=0)]}
    return {}


def _constraints_text(default, limits: dict) -> str:
    """What the descriptor's range cannot say (its ``additional_constraints``), or ''."""
    if not limits:
        return ''
    if isinstance(default, (list, tuple)):
        return f'each value {_limits_text(limits)}'
    parts = []
    if limits.get('choices') is not None:
        parts.append(f"one of {list(limits['choices'])}")
    if limits.get('min_exclusive') and limits.get('min') is not None:
        parts.append(f"> {limits['min']} ({limits['min']} itself is refused)")
    if isinstance(default, float) and limits.get('finite', True):
        parts.append('finite (no NaN or infinity)')
    return ', '.join(parts)


def _writable_limits(node: Node) -> dict:
    """The limits of ``node``'s writable parameters; the first call registers the check."""
    table = getattr(node, '_il_ros_writable_limits', None)
    if table is None:
        table = {}
        node._il_ros_writable_limits = table
        node.add_on_set_parameters_callback(
            lambda params: _refuse_bad_sets(node, table, params))
    return table


def _refuse_bad_sets(node: Node, table: dict, params) -> SetParametersResult:
    """Refuse a set that puts a writable parameter outside its limits, naming them.

    rclpy has already refused read-only parameters, wrong types and numbers outside a
    descriptor's range; this adds what a range cannot say. The node keeps running.
    """
    for prm in params:
        limits = table.get(prm.name)
        if limits is None:
            continue
        value = prm.value
        if isinstance(value, array.array):
            value = value.tolist()
        try:
            check_value(prm.name, value, **limits)
        except ParameterError as e:
            allowed = _limits_text(limits)
            reason = str(e) if allowed in str(e) else f'{e} (allowed: {allowed})'
            node.get_logger().warning(f'refused: {reason}')
            return SetParametersResult(successful=False, reason=reason)
    return SetParametersResult(successful=True)


_TYPE_NAMES = {'DOUBLE': 'a floating-point number',
               'INTEGER': 'an integer', 'BOOL': 'true or false', 'STRING': 'a string',
               'DOUBLE_ARRAY': 'a list of floating-point numbers ([1.0, 2.0])',
               'INTEGER_ARRAY': 'a list of integers', 'STRING_ARRAY': 'a list of strings',
               'BOOL_ARRAY': 'a list of true/false'}


def _type_error(name: str, message: str) -> str:
    """One line for rclpy's InvalidParameterTypeException (a value of the wrong type)."""
    m = re.search(r"to '(.*)' of type '(\w+)', expecting type '(\w+)'", message)
    if m is None:
        return f'parameter {name}: {message}'
    value, got, want = m.groups()
    hint = f' (write {value}.0)' if (got, want) == ('INTEGER', 'DOUBLE') else ''
    return (f'parameter {name}={value}: must be {_TYPE_NAMES.get(want, want.lower())}'
            f'{hint}, not {got.lower().replace("_", " ")}')


def _limits_text(limits: dict) -> str:
    parts = []
    if limits.get('choices') is not None:
        parts.append(f"one of {list(limits['choices'])}")
    if limits.get('min') is not None:
        parts.append(f"{'>' if limits.get('min_exclusive') else '>='} {limits['min']}")
    if limits.get('max') is not None:
        parts.append(f"<= {limits['max']}")
    return ', '.join(parts) or 'finite'


def run(node_factory, args=None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C or shutdown, then clean up.

    Uses the shutdown form that works on Humble, Jazzy and Kilted alike. A node whose
    parameters are invalid (:class:`ParameterError` while it is built) is reported in one
    line on stderr and the process exits with code 2.
    """
    _watch_sigint()
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = node_factory()
        rclpy.spin(node)
    except ParameterError as e:
        print(f'{_executable()}: {e}', file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as e:
        # Ctrl-C shuts the context down between callbacks or inside one; a publish that then
        # fails is part of shutting down, not an error. So is a Ctrl-C that lands inside a
        # foreign call (ctypes turns it into an ArgumentError: seen in MuJoCo's EGL
        # make_current), or inside the conversion of a message the executor takes (pybind11
        # then raises "Unable to convert call argument" and drops the KeyboardInterrupt).
        # Anything else is re-raised.
        if rclpy.ok() and not (_is_interrupt(e) or _SIGINT['seen']):
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if code:
        sys.exit(code)
    return code


_SIGINT = {'seen': False}


def _watch_sigint() -> None:
    """Note a Ctrl-C in ``_SIGINT`` and raise KeyboardInterrupt as Python's own handler does.

    Installed before ``rclpy.init``, whose handler chains to it, and only over Python's
    default handler, on the main thread.
    """
    def handler(signum, frame):
        _SIGINT['seen'] = True
        signal.default_int_handler(signum, frame)

    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, handler)


def _is_interrupt(e: BaseException) -> bool:
    """Whether ``e`` is a Ctrl-C (KeyboardInterrupt) wrapped by the code it interrupted."""
    cause = e
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            return True
        cause = cause.__cause__ or cause.__context__
    return type(e).__name__ == 'ArgumentError' and ': KeyboardInterrupt' in str(e)


def _executable() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ''
    return name.removesuffix('.py') or 'il_ros node'
