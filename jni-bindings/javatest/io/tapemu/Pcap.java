package io.tapemu;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Reads the frames of a classic pcap file (either byte order, µs or ns stamps). */
final class Pcap {
    private Pcap() {}

    static List<byte[]> frames(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file));
        int magic = b.order(ByteOrder.LITTLE_ENDIAN).getInt(0);
        if (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) {
            b.order(ByteOrder.BIG_ENDIAN);
            magic = b.getInt(0);
            if (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) {
                throw new IOException(file + ": not a pcap file");
            }
        }
        if (b.getInt(20) != 1) {
            throw new IOException(file + ": not Ethernet");
        }
        List<byte[]> out = new ArrayList<>();
        int pos = 24;
        while (pos + 16 <= b.limit()) {
            int caplen = b.getInt(pos + 8);
            pos += 16;
            if (caplen < 0 || pos + caplen > b.limit()) {
                throw new IOException(file + ": truncated record");
            }
            byte[] f = new byte[caplen];
            b.position(pos);
            b.get(f);
            out.add(f);
            pos += caplen;
        }
        return out;
    }
}
