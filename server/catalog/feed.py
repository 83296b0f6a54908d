"""Reading a feed body as a stream of records, whatever its format, each with the line it starts on.

`records(stream, media_type)` yields `(line, record, problem)`: a record (a dict, or whatever a
JSON line held) and None, or None and a problem `{"path", "message"}` for a line that could not be
read. Formats, by media type:

- `application/json`: one JSON array of objects. A syntax error ends the reading (an array cannot
  be resumed past it): the lines before it count, the problem names the line.
- `application/x-ndjson` (also `application/jsonl`, `application/json-lines`): one JSON value per
  line; a bad line is refused alone. Blank lines are skipped.
- `text/csv` and `text/tab-separated-values`: a header row of field names, then one product per
  row (RFC 4180 quoting: a quoted cell may span lines); empty cells are absent fields.

Bodies are UTF-8 (a byte order mark is skipped). A record may be at most MAX_RECORD bytes."""
import codecs
import csv
import json
import re

MAX_RECORD = 64 * 1024
CHUNK = 1 << 20
JSON_TYPES = ("application/json",)
JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines")
CSV_TYPES = {"text/csv": ",", "text/tab-separated-values": "\t"}
MEDIA_TYPES = JSON_TYPES + JSON_LINES_TYPES + tuple(CSV_TYPES)
_LINE_END = re.compile(r"(?<=\n)")
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


class UnsupportedMediaType(ValueError):
    pass


def media_type_of(content_type):
    """"text/csv; charset=utf-8" -> "text/csv"."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def media_type_for_path(path):
    """The media type a file name suggests (for the CLI): .json, .jsonl/.ndjson, .csv, .tsv/.txt."""
    name = str(path).lower()
    for suffix, media in ((".jsonl", JSON_LINES_TYPES[0]), (".ndjson", JSON_LINES_TYPES[0]), (".json", JSON_TYPES[0]),
                          (".csv", "text/csv"), (".tsv", "text/tab-separated-values"), (".txt", "text/tab-separated-values")):
        if name.endswith(suffix):
            return media
    raise UnsupportedMediaType(f"cannot tell the format of {path}: name it .json, .jsonl, .csv or .tsv")


def records(stream, media_type, id_columns=("id",)):
    """Iterate (line, record, problem) over a binary stream in the given media type. A CSV/TSV
    header must name one of `id_columns`."""
    if media_type in JSON_TYPES:
        return _json_array(stream)
    if media_type in JSON_LINES_TYPES:
        return _json_lines(stream)
    if media_type in CSV_TYPES:
        return _csv(stream, CSV_TYPES[media_type], id_columns)
    raise UnsupportedMediaType(f"send the feed as one of: {', '.join(MEDIA_TYPES)}")


def _problem(message, path=""):
    return {"path": path, "message": message}


def _too_long():
    return _problem(f"a record may be at most {MAX_RECORD} bytes")


# --- JSON lines ------------------------------------------------------------------------------

def _binary_lines(stream):
    """Lines of at most MAX_RECORD bytes; a longer one is skipped to its end and yields None."""
    readline = stream.readline
    first = True
    while True:
        raw = readline(MAX_RECORD + 1)
        if not raw:
            return
        if first:
            raw, first = raw.removeprefix(codecs.BOM_UTF8), False
        if len(raw) > MAX_RECORD and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = readline(CHUNK)
            yield None
        else:
            yield raw


def _json_lines(stream):
    for line, raw in enumerate(_binary_lines(stream), 1):
        if raw is None:
            yield line, None, _too_long()
            continue
        if raw.isspace() or not raw:
            continue
        try:
            yield line, json.loads(raw), None
        except UnicodeDecodeError:
            yield line, None, _problem("is not UTF-8")
        except (ValueError, RecursionError) as e:
            yield line, None, _problem(f"is not valid JSON ({_reason(e)})")


def _reason(error):
    return error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"


# --- text chunks, shared by the JSON array and CSV readers -----------------------------------

def _text_chunks(stream):
    """Decoded text; bytes that are not UTF-8 become lone surrogates, so the record holding them
    is refused alone (`_UNDECODED`) and the rest of the body still reads."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")
    while True:
        chunk = stream.read(CHUNK)
        text = decoder.decode(chunk, final=not chunk)
        if text:
            yield text
        if not chunk:
            return


class _Unreadable(Exception):
    """The rest of the body cannot be read; the message says why."""


# --- one JSON array ----------------------------------------------------------------------------

class _ArrayReader:
    """Elements of one JSON array, decoded one by one with the standard library's decoder as
    they arrive (raw_decode from a position), so the whole array is never held at once."""

    def __init__(self, stream):
        self.chunks = _text_chunks(stream)
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False
        self.decode = json.JSONDecoder().raw_decode

    def _more(self):
        if self.eof:
            return False
        text = next(self.chunks, None)
        if text is None:
            self.eof = True
            return False
        if self.pos > CHUNK:
            self.line += self.buf.count("\n", 0, self.pos)
            self.buf, self.pos = self.buf[self.pos:], 0
        self.buf += text
        return True

    def _advance(self, to):
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def _skip_space(self):
        while True:
            stripped = len(self.buf) - len(self.buf[self.pos:].lstrip(" \t\r\n"))
            self._advance(max(self.pos, stripped))
            if self.pos < len(self.buf) or not self._more():
                return

    def _peek(self):
        self._skip_space()
        return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def elements(self):
        """Yield (line, value, problem); stops after a problem that ends the reading."""
        try:
            if self._peek() != "[":
                raise _Unreadable("must be a JSON array of products")
            self._advance(self.pos + 1)
            if self._peek() == "]":
                self._advance(self.pos + 1)
            else:
                while True:
                    self._peek()
                    line = self.line
                    yield (line, *self._element())
                    following = self._peek()
                    self._advance(self.pos + 1)
                    if following == "]":
                        break
                    if following != ",":
                        raise _Unreadable("expected , or ] after this element")
            if self._peek():
                raise _Unreadable("has data after the closing ]")
        except _Unreadable as e:
            yield self.line, None, _problem(f"{e}; the rest of the body was not read")

    def _element(self):
        while True:
            try:
                value, end = self.decode(self.buf, self.pos)
            except (ValueError, RecursionError) as e:
                if len(self.buf) - self.pos <= MAX_RECORD and self._more():
                    continue
                if len(self.buf) - self.pos > MAX_RECORD:
                    raise _Unreadable(f"is not valid JSON or longer than {MAX_RECORD} bytes") from None
                raise _Unreadable(f"is not valid JSON ({_reason(e)})") from None
            if end == len(self.buf) and self._more():
                continue  # a number may go on in the next chunk: decode again with it
            start = self.pos
            self._advance(end)
            if end - start > MAX_RECORD:
                return None, _too_long()
            if _UNDECODED.search(self.buf, start, end):
                return None, _problem("is not UTF-8")
            return value, None


def _json_array(stream):
    return _ArrayReader(stream).elements()


# --- CSV / TSV ---------------------------------------------------------------------------------

def _text_lines(stream):
    """Text lines with their line ends."""
    rest = ""
    for text in _text_chunks(stream):
        parts = _LINE_END.split(rest + text)
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _csv(stream, delimiter, id_columns):
    reader = csv.reader(_text_lines(stream), delimiter=delimiter, strict=True)
    csv.field_size_limit(MAX_RECORD)
    done = 0
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [name.strip().lower() for name in header]
        if not set(id_columns) & set(names) or any(_UNDECODED.search(name) for name in names):
            yield 1, None, _problem(f"the header row must name the columns, among them {' or '.join(id_columns)}")
            return
        done = reader.line_num
        for row in reader:
            line, done = done + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield line, None, _problem(f"has {len(row)} cells; the header has {len(names)}")
                continue
            if any(_UNDECODED.search(cell) for cell in row):
                yield line, None, _problem("is not UTF-8")
                continue
            yield line, {name: cell for name, cell in zip(names, row) if cell != ""}, None
    except csv.Error as e:
        yield done + 1, None, _problem(f"cannot be read as {'TSV' if delimiter == chr(9) else 'CSV'} ({e}); "
                                       "the rest of the body was not read")
        return
