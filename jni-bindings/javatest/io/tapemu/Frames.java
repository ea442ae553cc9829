package io.tapemu;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/** Ethernet / ARP / IPv4 / DHCP frame helpers for the tests. */
final class Frames {
    private Frames() {}

    static byte[] mac(String s) {
        String[] p = s.split(":");
        byte[] b = new byte[6];
        for (int i = 0; i < 6; i++) {
            b[i] = (byte) Integer.parseInt(p[i], 16);
        }
        return b;
    }

    static byte[] ip(String s) {
        String[] p = s.split("\\.");
        byte[] b = new byte[4];
        for (int i = 0; i < 4; i++) {
            b[i] = (byte) Integer.parseInt(p[i]);
        }
        return b;
    }

    static String ipString(byte[] b, int off) {
        return (b[off] & 255) + "." + (b[off + 1] & 255) + "." + (b[off + 2] & 255) + "." + (b[off + 3] & 255);
    }

    static final byte[] BROADCAST = mac("ff:ff:ff:ff:ff:ff");

    /** An ARP request (who-has target tell sender) as a broadcast Ethernet frame. */
    static byte[] arpRequest(byte[] senderMac, byte[] senderIp, byte[] targetIp) {
        ByteBuffer b = ByteBuffer.allocate(42);
        b.put(BROADCAST).put(senderMac).putShort((short) 0x0806);
        b.putShort((short) 1).putShort((short) 0x0800).put((byte) 6).put((byte) 4).putShort((short) 1);
        b.put(senderMac).put(senderIp).put(new byte[6]).put(targetIp);
        return b.array();
    }

    /** The ARP reply a host with {@code ourMac/ourIp} sends to a request from {@code peerMac/peerIp}. */
    static byte[] arpReply(byte[] ourMac, byte[] ourIp, byte[] peerMac, byte[] peerIp) {
        ByteBuffer b = ByteBuffer.allocate(42);
        b.put(peerMac).put(ourMac).putShort((short) 0x0806);
        b.putShort((short) 1).putShort((short) 0x0800).put((byte) 6).put((byte) 4).putShort((short) 2);
        b.put(ourMac).put(ourIp).put(peerMac).put(peerIp);
        return b.array();
    }

    static int etherType(byte[] f) {
        return f.length < 14 ? -1 : ((f[12] & 255) << 8) | (f[13] & 255);
    }

    static int checksum(byte[] b, int off, int len) {
        long sum = 0;
        for (int i = 0; i < len; i += 2) {
            int hi = b[off + i] & 255;
            int lo = i + 1 < len ? b[off + i + 1] & 255 : 0;
            sum += (hi << 8) | lo;
        }
        while ((sum >> 16) != 0) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (int) (~sum & 0xffff);
    }

    /** An IPv4/UDP packet inside an Ethernet frame (UDP checksum 0: none). */
    static byte[] udpFrame(byte[] dstMac, byte[] srcMac, byte[] srcIp, byte[] dstIp, int srcPort, int dstPort,
            byte[] payload) {
        int ipLen = 20 + 8 + payload.length;
        ByteBuffer b = ByteBuffer.allocate(14 + ipLen);
        b.put(dstMac).put(srcMac).putShort((short) 0x0800);
        b.put((byte) 0x45).put((byte) 0).putShort((short) ipLen).putShort((short) 0).putShort((short) 0)
                .put((byte) 64).put((byte) 17).putShort((short) 0).put(srcIp).put(dstIp);
        b.putShort((short) srcPort).putShort((short) dstPort).putShort((short) (8 + payload.length))
                .putShort((short) 0).put(payload);
        byte[] f = b.array();
        int c = checksum(f, 14, 20);
        f[24] = (byte) (c >> 8);
        f[25] = (byte) c;
        return f;
    }

    /** A parsed DHCP message from the client, or null. */
    static final class Dhcp {
        byte[] xid = new byte[4];
        byte[] chaddr = new byte[6];
        int type;
        byte[] requested;
    }

    static Dhcp parseDhcpFromClient(byte[] f) {
        if (etherType(f) != 0x0800 || f.length < 14 + 20 + 8 + 240) {
            return null;
        }
        int ihl = (f[14] & 15) * 4;
        if (f[14 + 9] != 17) {
            return null;
        }
        int udp = 14 + ihl;
        int dport = ((f[udp + 2] & 255) << 8) | (f[udp + 3] & 255);
        if (dport != 67) {
            return null;
        }
        int bootp = udp + 8;
        Dhcp d = new Dhcp();
        System.arraycopy(f, bootp + 4, d.xid, 0, 4);
        System.arraycopy(f, bootp + 28, d.chaddr, 0, 6);
        int i = bootp + 240;
        while (i < f.length) {
            int code = f[i] & 255;
            if (code == 255) {
                break;
            }
            if (code == 0) {
                i++;
                continue;
            }
            if (i + 1 >= f.length) {
                break;
            }
            int len = f[i + 1] & 255;
            if (code == 53 && len >= 1) {
                d.type = f[i + 2] & 255;
            } else if (code == 50 && len == 4) {
                d.requested = new byte[4];
                System.arraycopy(f, i + 2, d.requested, 0, 4);
            }
            i += 2 + len;
        }
        return d;
    }

    /** The DHCP message type of a server-to-client frame (UDP 67 -> 68), or -1. */
    static int dhcpServerType(byte[] f) {
        if (etherType(f) != 0x0800 || f.length < 14 + 20 + 8 + 240 || f[14 + 9] != 17) {
            return -1;
        }
        int udp = 14 + (f[14] & 15) * 4;
        int sport = ((f[udp] & 255) << 8) | (f[udp + 1] & 255);
        if (sport != 67) {
            return -1;
        }
        for (int i = udp + 8 + 240; i + 2 < f.length; ) {
            int code = f[i] & 255;
            if (code == 255) {
                break;
            }
            if (code == 0) {
                i++;
                continue;
            }
            if (code == 53) {
                return f[i + 2] & 255;
            }
            i += 2 + (f[i + 1] & 255);
        }
        return -1;
    }

    /** A copy of a server frame with the BOOTP xid replaced and the UDP checksum cleared. */
    static byte[] withXid(byte[] f, byte[] xid) {
        byte[] out = f.clone();
        int udp = 14 + (f[14] & 15) * 4;
        System.arraycopy(xid, 0, out, udp + 8 + 4, 4);
        out[udp + 6] = 0;
        out[udp + 7] = 0;
        return out;
    }

    /** A DHCP OFFER (type 2) or ACK (type 5) from a server at 192.0.2.1 with rich options. */
    static byte[] dhcpReply(Dhcp req, int type, byte[] serverMac, String yiaddr) {
        return dhcpReply(req, type, serverMac, yiaddr, 0);
    }

    /** Like {@link #dhcpReply(Dhcp, int, byte[], String)}, with T1 = {@code renewSeconds} if > 0. */
    static byte[] dhcpReply(Dhcp req, int type, byte[] serverMac, String yiaddr, int renewSeconds) {
        ByteBuffer b = ByteBuffer.allocate(400);
        b.put((byte) 2).put((byte) 1).put((byte) 6).put((byte) 0).put(req.xid).putShort((short) 0)
                .putShort((short) 0);
        b.put(new byte[4]).put(ip(yiaddr)).put(ip("192.0.2.1")).put(new byte[4]);
        b.put(req.chaddr).put(new byte[10]).put(new byte[64]).put(new byte[128]);
        b.put(new byte[] {99, (byte) 130, 83, 99});
        b.put((byte) 53).put((byte) 1).put((byte) type);
        b.put((byte) 54).put((byte) 4).put(ip("192.0.2.1"));
        b.put((byte) 51).put((byte) 4).putInt(3600);
        b.put((byte) 1).put((byte) 4).put(ip("255.255.255.0"));
        b.put((byte) 3).put((byte) 4).put(ip("192.0.2.1"));
        b.put((byte) 6).put((byte) 8).put(ip("192.0.2.1")).put(ip("192.0.2.2"));
        byte[] domain = "lab.example".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        b.put((byte) 15).put((byte) domain.length).put(domain);
        b.put((byte) 26).put((byte) 2).putShort((short) 1400);
        if (renewSeconds > 0) {
            b.put((byte) 58).put((byte) 4).putInt(renewSeconds);
            b.put((byte) 59).put((byte) 4).putInt(3000);
        }
        b.put((byte) 255);
        while (b.position() < 300) {
            b.put((byte) 0);
        }
        byte[] payload = new byte[b.position()];
        b.flip();
        b.get(payload);
        return udpFrame(BROADCAST, serverMac, ip("192.0.2.1"), ip("255.255.255.255"), 67, 68, payload);
    }

    static List<String> hex(byte[] f) {
        List<String> out = new ArrayList<>();
        for (byte x : f) {
            out.add(String.format("%02x", x & 255));
        }
        return out;
    }
}
