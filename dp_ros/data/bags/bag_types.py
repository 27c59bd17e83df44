"""Decoders for the topics a conversion reads: the definitions stored in the bag, else ROS 2 Jazzy's.

A rosbag2 bag describes itself: it stores each topic's message definition (MCAP
schemas, sqlite3's message_definitions table). Only the topics a conversion
reads get a decoder, so a bag may hold anything else beside them (service
events, whose request/response definitions rosbags cannot parse, rosbag2's own
event topics, custom types) without harm. For a topic that is read:

1. a standard ROS 2 message type (sensor_msgs, std_msgs, trajectory_msgs, ...)
   is decoded with ROS 2 Jazzy's definition: they are the same in every ROS 2
   distribution, while stored copies can be incomplete (rosbag2's own 2020 test
   bags store ``uint8 level`` as the whole of rcl_interfaces/msg/Log);
2. any other type with the definition stored in the bag;
3. otherwise the topic cannot be decoded, and a BagError names the topic, its type and why.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

HEADER_TYPE = "std_msgs/msg/Header"
TIME_TYPE = "builtin_interfaces/msg/Time"


class BagError(ValueError):
    """A bag cannot be read (the message names the bag, and the topic when there is one)."""


@dataclass(frozen=True)
class StoredDefinition:
    """A message definition as the bag stores it: ``msg`` or ``idl`` text, or none."""

    format: str
    text: str


def describe_error(exc: BaseException) -> str:
    text = " ".join(str(a) for a in exc.args) if exc.args else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@lru_cache(maxsize=1)
def standard_store():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _store_from_definition(msgtype: str, definition: StoredDefinition):
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    if definition.format == "msg":
        types = get_types_from_msg(definition.text, msgtype)
    else:
        types = {}
        separator = "=" * 80 + "\n"
        sections = definition.text.split(separator)[1:] if definition.text.startswith(separator) else [definition.text]
        for section in sections:
            types.update(get_types_from_idl(section.split("\n", 1)[1] if section.startswith("IDL: ") else section))
    store.register(types)
    store.get_msgdef(msgtype)  # generates the deserializer now, so a broken definition fails here
    return store


def _stamp_comes_first(store, msgtype: str) -> bool:
    """Whether the serialized message starts with a std_msgs/Header whose first field is its stamp."""
    fields = store.fielddefs.get(msgtype, (None, []))[1]
    if not fields or fields[0][0] != "header" or fields[0][1][1] != HEADER_TYPE:
        return False
    header_fields = store.fielddefs.get(HEADER_TYPE, (None, []))[1]
    return bool(header_fields) and header_fields[0][0] == "stamp" and header_fields[0][1][1] == TIME_TYPE


class MessageDecoder:
    """Deserializes the CDR messages of one topic."""

    def __init__(self, msgtype: str, store: Any, source: str):
        self.msgtype = msgtype
        self.source = source
        """``standard`` (ROS 2 Jazzy's definition) or ``bag`` (the definition stored in the bag)."""
        self.stamp_first = _stamp_comes_first(store, msgtype)
        """True when the header stamp can be read from the first bytes (see bag_reader.header_stamp)."""
        self._store = store

    def __call__(self, raw: bytes | memoryview) -> Any:
        return self._store.deserialize_cdr(raw, self.msgtype)


def make_decoder(bag: str, topic: str, msgtype: str, definition: StoredDefinition) -> MessageDecoder:
    """The decoder for ``topic`` (rule above); raises BagError naming the topic and type when there is none."""
    standard = standard_store()
    if msgtype in standard.fielddefs:
        return MessageDecoder(msgtype, standard, "standard")
    problem = "the bag stores no definition for it"
    if definition.format in ("msg", "idl") and definition.text.strip():
        try:
            return MessageDecoder(msgtype, _store_from_definition(msgtype, definition), "bag")
        except Exception as exc:  # noqa: BLE001 - rosbags' parsers raise many kinds on a bad definition
            problem = f"the definition stored in the bag does not parse ({describe_error(exc).splitlines()[0][:200]})"
    raise BagError(f"{bag}: topic {topic} has type {msgtype}, which cannot be decoded: it is not a standard ROS 2 "
                   f"Jazzy message and {problem}")
