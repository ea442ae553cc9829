package io.tapemu;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small strict JSON reader (RFC 8259) for the events the native side sends: each one the
 * JSON object the {@code tapemu} command line prints with {@code --json}.
 *
 * <p>Written here because the Java API takes no dependencies, and the JSON reader Android has
 * ({@code org.json}) does not exist on desktop JVMs. Strict: no comments, trailing commas,
 * single quotes, leading zeros, unescaped control characters, duplicate keys or trailing
 * text; nesting is bounded. Anything malformed is an {@link IllegalArgumentException} naming
 * the offset, never another exception and never a crash.
 */
final class Json {
    /** Deepest nesting read (the native side sends two levels at most). */
    static final int MAX_DEPTH = 32;

    /** JSON {@code null} inside arrays and objects. */
    static final Object NULL = new Object() {
        @Override
        public String toString() {
            return "null";
        }
    };

    private final String text;
    private int pos;

    private Json(String text) {
        this.text = text;
    }

    /**
     * Reads a document whose top level is an object.
     *
     * @param text the JSON text
     * @return the object
     * @throws IllegalArgumentException if the text is null or not exactly one JSON object
     */
    static Obj parseObject(String text) {
        if (text == null) {
            throw new IllegalArgumentException("JSON text is null");
        }
        Json p = new Json(text);
        p.skipSpace();
        if (p.peek() != '{') {
            throw p.error("expected an object");
        }
        Object value = p.value(0);
        p.skipSpace();
        if (p.pos != text.length()) {
            throw p.error("text after the value");
        }
        return (Obj) value;
    }

    /** A JSON object: typed accessors that throw {@link IllegalArgumentException} on a mismatch. */
    static final class Obj {
        private final Map<String, Object> members;

        private Obj(Map<String, Object> members) {
            this.members = members;
        }

        /** @return whether {@code key} is present and not null */
        boolean has(String key) {
            Object v = members.get(key);
            return v != null && v != NULL;
        }

        private Object get(String key) {
            Object v = members.get(key);
            if (v == null || v == NULL) {
                throw new IllegalArgumentException("missing \"" + key + "\"");
            }
            return v;
        }

        private static <T> T as(Class<T> type, String key, Object v) {
            if (!type.isInstance(v)) {
                throw new IllegalArgumentException("\"" + key + "\" is not " + type.getSimpleName() + ": " + v);
            }
            return type.cast(v);
        }

        /** @return the string at {@code key}; throws if absent or null */
        String string(String key) {
            return as(String.class, key, get(key));
        }

        /** @return the string at {@code key}, or {@code null} if absent or null */
        String optString(String key) {
            return has(key) ? string(key) : null;
        }

        /** @return the integer at {@code key}; throws if absent, null or not an integer */
        long integer(String key) {
            return as(Long.class, key, get(key));
        }

        /** @return the integer at {@code key}, or {@code absent} if absent or null */
        long optInteger(String key, long absent) {
            return has(key) ? integer(key) : absent;
        }

        /** @return the object at {@code key}; throws if absent or null */
        Obj object(String key) {
            return as(Obj.class, key, get(key));
        }

        /** @return the strings of the array at {@code key}; empty if absent or null */
        List<String> strings(String key) {
            List<String> out = new ArrayList<>();
            for (Object v : array(key)) {
                out.add(as(String.class, key, v));
            }
            return out;
        }

        /** @return the objects of the array at {@code key}; empty if absent or null */
        List<Obj> objects(String key) {
            List<Obj> out = new ArrayList<>();
            for (Object v : array(key)) {
                out.add(as(Obj.class, key, v));
            }
            return out;
        }

        private List<?> array(String key) {
            return has(key) ? as(List.class, key, get(key)) : Collections.emptyList();
        }

        @Override
        public String toString() {
            return members.toString();
        }
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException("bad JSON at offset " + pos + ": " + what);
    }

    private char peek() {
        if (pos >= text.length()) {
            throw error("unexpected end");
        }
        return text.charAt(pos);
    }

    private void expect(char c) {
        if (peek() != c) {
            throw error("expected '" + c + "'");
        }
        pos++;
    }

    private void skipSpace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    private Object value(int depth) {
        if (depth >= MAX_DEPTH) {
            throw error("nested deeper than " + MAX_DEPTH);
        }
        skipSpace();
        char c = peek();
        switch (c) {
            case '{': return object(depth);
            case '[': return array(depth);
            case '"': return string();
            case 't': return literal("true", Boolean.TRUE);
            case 'f': return literal("false", Boolean.FALSE);
            case 'n': return literal("null", NULL);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw error("unexpected '" + c + "'");
        }
    }

    private Object literal(String word, Object value) {
        if (!text.startsWith(word, pos)) {
            throw error("expected " + word);
        }
        pos += word.length();
        return value;
    }

    private Obj object(int depth) {
        expect('{');
        Map<String, Object> members = new LinkedHashMap<>();
        skipSpace();
        if (peek() == '}') {
            pos++;
            return new Obj(members);
        }
        while (true) {
            skipSpace();
            if (peek() != '"') {
                throw error("expected a member name");
            }
            int at = pos;
            String key = string();
            skipSpace();
            expect(':');
            Object v = value(depth + 1);
            if (members.put(key, v) != null) {
                pos = at;
                throw error("duplicate member \"" + key + "\"");
            }
            skipSpace();
            if (peek() == ',') {
                pos++;
            } else {
                expect('}');
                return new Obj(members);
            }
        }
    }

    private List<Object> array(int depth) {
        expect('[');
        List<Object> items = new ArrayList<>();
        skipSpace();
        if (peek() == ']') {
            pos++;
            return items;
        }
        while (true) {
            items.add(value(depth + 1));
            skipSpace();
            if (peek() == ',') {
                pos++;
            } else {
                expect(']');
                return items;
            }
        }
    }

    private String string() {
        expect('"');
        StringBuilder sb = new StringBuilder();
        while (true) {
            char c = peek();
            pos++;
            if (c == '"') {
                return sb.toString();
            }
            if (c < 0x20) {
                pos--;
                throw error("control character in a string");
            }
            if (c != '\\') {
                sb.append(c);
                continue;
            }
            char e = peek();
            pos++;
            switch (e) {
                case '"': sb.append('"'); break;
                case '\\': sb.append('\\'); break;
                case '/': sb.append('/'); break;
                case 'b': sb.append('\b'); break;
                case 'f': sb.append('\f'); break;
                case 'n': sb.append('\n'); break;
                case 'r': sb.append('\r'); break;
                case 't': sb.append('\t'); break;
                case 'u': sb.append(hex4()); break;
                default:
                    pos--;
                    throw error("bad escape '\\" + e + "'");
            }
        }
    }

    private char hex4() {
        if (pos + 4 > text.length()) {
            throw error("short \\u escape");
        }
        int v = 0;
        for (int i = 0; i < 4; i++) {
            char c = text.charAt(pos + i);
            int d = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) {
                throw error("bad \\u escape");
            }
            v = v * 16 + d;
        }
        pos += 4;
        return (char) v;
    }

    private Object number() {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        boolean integral = true;
        if (peek() == '0') {
            pos++;
        } else {
            digits();
        }
        if (pos < text.length() && text.charAt(pos) == '.') {
            pos++;
            digits();
            integral = false;
        }
        if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
            pos++;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            digits();
            integral = false;
        }
        String n = text.substring(start, pos);
        try {
            return integral ? (Object) Long.valueOf(n) : (Object) Double.valueOf(n);
        } catch (NumberFormatException e) {
            pos = start;
            throw error("number out of range: " + n);
        }
    }

    private void digits() {
        char c = peek();
        if (c < '0' || c > '9') {
            throw error("expected a digit");
        }
        while (pos < text.length() && text.charAt(pos) >= '0' && text.charAt(pos) <= '9') {
            pos++;
        }
    }
}
