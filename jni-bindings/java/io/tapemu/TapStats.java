package io.tapemu;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A snapshot of an emulator's counters: one per outcome and one per drop reason, named
 * {@code group.counter} after the Rust {@code tapemu::Stats} groups (e.g. {@code link.frames_in},
 * {@code link.drop_not_for_us}), then the driver's own ({@code link_dropped_out} …). Immutable.
 */
public final class TapStats {
    private final Map<String, Long> counters;
    private final long listenerErrors;

    TapStats(String[] names, long[] values, long listenerErrors) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (int i = 0; i < names.length && i < values.length; i++) {
            m.put(names[i], values[i]);
        }
        this.counters = Collections.unmodifiableMap(m);
        this.listenerErrors = listenerErrors;
    }

    /**
     * @param name a counter name
     * @return its value, or 0 for an unknown name
     */
    public long get(@NonNull String name) {
        Long v = counters.get(name);
        return v == null ? 0 : v;
    }

    /** @return every counter by name, in a fixed order */
    public @NonNull Map<String, Long> asMap() {
        return counters;
    }

    /** @return the sum of the emulator's drop counters (every {@code group.drop_*}) */
    public long dropsTotal() {
        return get("drops_total");
    }

    /** @return how many listener calls threw an exception */
    public long listenerErrors() {
        return listenerErrors;
    }

    @Override
    public @NonNull String toString() {
        StringBuilder sb = new StringBuilder("TapStats{");
        boolean first = true;
        for (Map.Entry<String, Long> e : counters.entrySet()) {
            if (e.getValue() != 0) {
                sb.append(first ? "" : ", ").append(e.getKey()).append('=').append(e.getValue());
                first = false;
            }
        }
        return sb.append(", listener_errors=").append(listenerErrors).append('}').toString();
    }
}
