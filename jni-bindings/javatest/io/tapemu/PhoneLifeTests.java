package io.tapemu;

import static io.tapemu.TestRunner.check;
import static io.tapemu.TestRunner.expect;
import static io.tapemu.TestRunner.test;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A phone's life through the Java API: the MAC read back and reused, a remembered lease,
 * close without release, network changes, link status, timers. {@link #unitTests()} runs on
 * the callback link with a DHCP server played in Java; {@link #labTests} against the
 * namespace lab's dnsmasq.
 */
final class PhoneLifeTests {
    private PhoneLifeTests() {}

    /** A recorder that also hears link status and TUN failures. */
    static class LinkRecorder extends TestRunner.Recorder {
        final BlockingQueue<String> link = new LinkedBlockingQueue<>();
        final BlockingQueue<Lease> renewed = new LinkedBlockingQueue<>();
        final AtomicReference<String> storedInListener = new AtomicReference<>();
        volatile TapEmulator emulator;

        @Override
        public void onLeaseAcquired(Lease lease) {
            TapEmulator t = emulator;
            if (t != null) {
                storedInListener.set(t.storedLease());
            }
            super.onLeaseAcquired(lease);
        }

        @Override
        public void onLeaseRenewed(Lease lease) {
            renewed.add(lease);
        }

        @Override
        public void onLinkDown(String error, long retryInMillis) {
            link.add("down " + retryInMillis + " " + error);
        }

        @Override
        public void onLinkUp() {
            link.add("up");
        }

        @Override
        public void onTunFailed(String error) {
            link.add("tun " + error);
        }

        /** The next link status line starting with {@code prefix}, skipping others; or null. */
        String nextLink(String prefix, long timeoutMs) throws InterruptedException {
            long end = System.currentTimeMillis() + timeoutMs;
            while (true) {
                String s = link.poll(Math.max(end - System.currentTimeMillis(), 0), TimeUnit.MILLISECONDS);
                if (s == null || s.startsWith(prefix)) {
                    return s;
                }
            }
        }
    }

    /** Seconds of CLOCK_BOOTTIME, from /proc/uptime (which counts it). */
    static double bootSeconds() throws IOException {
        return Double.parseDouble(new String(Files.readAllBytes(Paths.get("/proc/uptime"))).split(" ")[0]);
    }

    static void unitTests() {
        test("mac(): the configured MAC read back; a drawn one is stable, local, unicast and reusable", () -> {
            TestRunner.Recorder r = new TestRunner.Recorder();
            try (TapEmulator given = new TapEmulator(TapConfig.builder().mac("02-00-5E-10-00-0A").build(), r)) {
                check(given.mac().equals("02:00:5e:10:00:0a"), "normalised: " + given.mac());
            }
            String drawn;
            try (TapEmulator a = new TapEmulator(TapConfig.builder().build(), r);
                    TapEmulator b = new TapEmulator(TapConfig.builder().build(), r)) {
                drawn = a.mac();
                check(drawn.equals(a.mac()), "the same on every call");
                check(!drawn.equals(b.mac()), "drawn per emulator: " + drawn + " " + b.mac());
                int first = Integer.parseInt(drawn.substring(0, 2), 16);
                check((first & 2) != 0 && (first & 1) == 0, "locally administered unicast: " + drawn);
            }
            TapEmulator again = new TapEmulator(TapConfig.builder().mac(drawn).build(), r);
            check(again.mac().equals(drawn), "reused");
            again.close();
            expect(IllegalStateException.class, again::mac);
            expect(IllegalStateException.class, again::storedLease);
        });

        test("rememberedLease: malformed JSON or a static address -> IllegalArgumentException", () -> {
            TestRunner.Recorder r = new TestRunner.Recorder();
            for (String bad : new String[] {"", "{}", "[]", "{\"address\":\"192.0.2.1\"}", "nonsense"}) {
                expect(IllegalArgumentException.class,
                        () -> new TapEmulator(TapConfig.builder().rememberedLease(bad).build(), r));
            }
            String ok = "{\"address\":\"192.0.2.77\",\"prefix\":24,\"lease_ms\":3600000,\"t1_ms\":null,"
                    + "\"t2_ms\":null,\"server\":\"192.0.2.1\",\"acquired_unix\":1}";
            TapEmulator.validate(TapConfig.builder().rememberedLease(ok).build());
            expect(IllegalArgumentException.class, () -> TapEmulator.validate(TapConfig.builder()
                    .staticAddress("192.0.2.50", 24, null).rememberedLease(ok).build()));
        });

        test("storedLease() in the listener, close(false) sends no release, the next emulator asks for "
                + "the address again (REQUEST, no DISCOVER)", () -> {
            LinkRecorder r = new LinkRecorder();
            TapEmulator tap = new TapEmulator(TapConfig.builder().ipv6(false).build(), r);
            r.emulator = tap;
            tap.start();
            check(tap.storedLease() == null, "no lease yet");
            Lease lease = TestRunner.serveDhcp(tap, r, "192.0.2.77", 10_000);
            check(lease != null, "lease");
            String stored = tap.storedLease();
            check(stored != null && stored.contains("\"address\":\"192.0.2.77\"")
                    && stored.contains("\"acquired_unix\":"), "stored form: " + stored);
            check(stored.equals(r.storedInListener.get()), "read in onLeaseAcquired: " + r.storedInListener.get());
            String mac = tap.mac();
            r.frames.clear();
            tap.close(false);
            tap.close(true); // only the first close counts
            for (byte[] f : r.frames) {
                Frames.Dhcp d = Frames.parseDhcpFromClient(f);
                check(d == null || d.type != 7, "no DHCPRELEASE on close(false)");
            }

            TestRunner.Recorder r2 = new TestRunner.Recorder();
            TapConfig again = TapConfig.builder().ipv6(false).mac(mac).rememberedLease(stored).build();
            try (TapEmulator second = new TapEmulator(again, r2)) {
                second.start();
                Frames.Dhcp first = null;
                long end = System.currentTimeMillis() + 5000;
                while (first == null && System.currentTimeMillis() < end) {
                    byte[] f = r2.frames.poll(100, TimeUnit.MILLISECONDS);
                    first = f == null ? null : Frames.parseDhcpFromClient(f);
                }
                check(first != null, "a DHCP message");
                check(first.type == 3, "DHCPREQUEST first, not DISCOVER: type " + first.type);
                check(first.requested != null && Frames.ipString(first.requested, 0).equals("192.0.2.77"),
                        "asks for 192.0.2.77");
                check(Frames.ipString(first.chaddr, 0).length() > 0
                        && java.util.Arrays.equals(first.chaddr, Frames.mac(mac)), "same MAC");
                byte[] ack = Frames.dhcpReply(first, 5, TestRunner.SERVER_MAC, "192.0.2.77");
                second.sendFrame(ack, 0, ack.length);
                Lease back = r2.leases.poll(5, TimeUnit.SECONDS);
                check(back != null && back.address().getHostAddress().equals("192.0.2.77"), "same address: " + back);
            }
        });

        test("networkChanged(), poke() and nextTimerElapsedRealtimeNanos() on a running emulator; "
                + "misuse -> IllegalStateException", () -> {
            AtomicReference<Throwable> fromListener = new AtomicReference<>();
            AtomicReference<Throwable> changeFromListener = new AtomicReference<>();
            LinkRecorder r = new LinkRecorder() {
                @Override
                public void onLeaseAcquired(Lease lease) {
                    try {
                        emulator.nextTimerElapsedRealtimeNanos();
                    } catch (Throwable t) {
                        fromListener.set(t);
                    }
                    try {
                        emulator.networkChanged(); // queued from a listener: no wait, no throw
                    } catch (Throwable t) {
                        changeFromListener.set(t);
                    }
                    super.onLeaseAcquired(lease);
                }
            };
            TapEmulator tap = new TapEmulator(TapConfig.builder().ipv6(false).build(), r);
            r.emulator = tap;
            expect(IllegalStateException.class, tap::networkChanged);
            expect(IllegalStateException.class, tap::poke);
            expect(IllegalStateException.class, tap::nextTimerElapsedRealtimeNanos);
            tap.start();
            long at = tap.nextTimerElapsedRealtimeNanos();
            double now = bootSeconds();
            check(at > 0, "a DHCP timer runs: " + at);
            check(at / 1e9 > now - 1 && at / 1e9 < now + 70, "on CLOCK_BOOTTIME: " + at / 1e9 + " vs " + now);
            tap.poke();
            Lease lease = TestRunner.serveDhcp(tap, r, "192.0.2.78", 10_000);
            check(lease != null, "lease");
            check(fromListener.get() instanceof IllegalStateException, "nextTimer from a listener: " + fromListener.get());
            check(changeFromListener.get() == null, "networkChanged from a listener: " + changeFromListener.get());
            // A network change confirms the lease: a DHCPREQUEST.
            r.frames.clear();
            tap.networkChanged();
            Frames.Dhcp confirm = null;
            long end = System.currentTimeMillis() + 5000;
            while (confirm == null && System.currentTimeMillis() < end) {
                byte[] f = r.frames.poll(100, TimeUnit.MILLISECONDS);
                Frames.Dhcp d = f == null ? null : Frames.parseDhcpFromClient(f);
                if (d != null && d.type == 3) {
                    confirm = d;
                }
            }
            check(confirm != null, "DHCPREQUEST after networkChanged()");
            at = tap.nextTimerElapsedRealtimeNanos();
            check(at > 0, "timers while bound: " + at);
            tap.close();
            expect(IllegalStateException.class, tap::networkChanged);
            expect(IllegalStateException.class, tap::poke);
            expect(IllegalStateException.class, tap::nextTimerElapsedRealtimeNanos);
        });

        test("misuse: forged handles on the new native methods -> IllegalStateException", () -> {
            for (String name : new String[] {"nativeMac", "nativeStoredLease", "nativeNetworkChanged",
                    "nativeNextTimer", "nativePoke"}) {
                expect(IllegalStateException.class, () -> TestRunner.invokeNative(name, 424242L));
            }
        });
    }

    // ---- lab (root, inside the phone namespace) ---------------------------------------------

    /** Waits until the dnsmasq log, from {@code from} on, contains {@code want}. */
    static String waitLog(String log, int from, String want, long timeoutMs) throws Exception {
        long end = System.currentTimeMillis() + timeoutMs;
        while (true) {
            String text = new String(Files.readAllBytes(Paths.get(log)));
            String tail = text.substring(Math.min(from, text.length()));
            if (tail.contains(want) || System.currentTimeMillis() > end) {
                return tail;
            }
            Thread.sleep(50);
        }
    }

    static int logLength(String log) throws IOException {
        return Files.readAllBytes(Paths.get(log)).length;
    }

    static void labTests(String linkUrl, String dnsmasqLog) {
        test("lab: networkChanged() reopens the link and keeps the lease (dnsmasq: REQUEST, no DISCOVER)", () -> {
            LinkRecorder r = new LinkRecorder();
            TapConfig cfg = TapConfig.builder().hostname("jvm-roam").link(linkUrl).build();
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                Lease lease = r.leases.poll(30, TimeUnit.SECONDS);
                check(lease != null, "lease");
                String addr = lease.address().getHostAddress();
                int protects;
                synchronized (r) {
                    protects = r.protectedFds.size();
                }
                int from = logLength(dnsmasqLog);
                long t0 = System.nanoTime();
                tap.networkChanged();
                String tail = waitLog(dnsmasqLog, from, "DHCPACK(br0) " + addr, 10_000);
                System.out.println("     lease confirmed " + (System.nanoTime() - t0) / 1_000_000
                        + " ms after networkChanged() (as dnsmasq's log shows it)");
                check(tail.contains("DHCPREQUEST(br0) " + addr), "dnsmasq got a REQUEST for " + addr + ":\n" + tail);
                check(tail.contains("DHCPACK(br0) " + addr), "and acknowledged it:\n" + tail);
                check(!tail.contains("DHCPDISCOVER"), "no DISCOVER:\n" + tail);
                synchronized (r) {
                    check(r.protectedFds.size() > protects, "the new socket was protected");
                }
                check(r.leases.isEmpty(), "no new lease: " + r.leases);
            }
        });

        test("lab: close(false), then an emulator with the same mac() and storedLease() keeps the address", () -> {
            LinkRecorder r = new LinkRecorder();
            TapConfig cfg = TapConfig.builder().hostname("jvm-restart").link(linkUrl).build();
            String mac;
            String stored;
            String addr;
            TapEmulator tap = new TapEmulator(cfg, r);
            try {
                tap.start();
                Lease lease = r.leases.poll(30, TimeUnit.SECONDS);
                check(lease != null, "lease");
                addr = lease.address().getHostAddress();
                mac = tap.mac();
                stored = tap.storedLease();
                check(stored != null && stored.contains(addr), "stored: " + stored);
            } finally {
                tap.close(false);
            }
            int from = logLength(dnsmasqLog);
            LinkRecorder r2 = new LinkRecorder();
            long t0 = System.nanoTime();
            TapConfig again = TapConfig.builder().hostname("jvm-restart").link(linkUrl).mac(mac)
                    .rememberedLease(stored).build();
            try (TapEmulator second = new TapEmulator(again, r2)) {
                second.start();
                Lease back = r2.leases.poll(30, TimeUnit.SECONDS);
                long ms = (System.nanoTime() - t0) / 1_000_000;
                check(back != null && back.address().getHostAddress().equals(addr), "same address " + addr + ": " + back);
                System.out.println("     time to lease by INIT-REBOOT: " + ms + " ms");
                String tail = waitLog(dnsmasqLog, from, "DHCPACK(br0) " + addr, 5000);
                check(!tail.contains("DHCPRELEASE"), "close(false) released nothing:\n" + tail);
                check(tail.contains("DHCPREQUEST(br0) " + addr) && !tail.contains("DHCPDISCOVER"),
                        "REQUEST, no DISCOVER:\n" + tail);
            }
        });

        test("lab: onLinkDown/onLinkUp when the TCP peer is killed and restarted (a Java TCP-to-VXLAN relay)", () -> {
            try (Relay relay = new Relay(linkUrl)) {
                LinkRecorder r = new LinkRecorder();
                TapConfig cfg = TapConfig.builder().hostname("jvm-tcp").protectSockets(false)
                        .link("tcp://127.0.0.1:" + relay.port + "?len=2").build();
                try (TapEmulator tap = new TapEmulator(cfg, r)) {
                    tap.start();
                    Lease lease = r.leases.poll(30, TimeUnit.SECONDS);
                    check(lease != null, "lease through the relay");
                    relay.kill();
                    String down = r.nextLink("down", 15_000);
                    check(down != null, "onLinkDown after the peer was killed");
                    System.out.println("     " + down);
                    check(down.contains("tcp://127.0.0.1:" + relay.port), "the error names the link: " + down);
                    long retry = Long.parseLong(down.split(" ")[1]);
                    check(retry >= 0 && retry <= 30_000, "retry in " + retry + " ms");
                    relay.restart();
                    check(r.nextLink("up", 35_000) != null, "onLinkUp after the peer came back");
                    int from = logLength(dnsmasqLog);
                    tap.networkChanged();
                    String tail = waitLog(dnsmasqLog, from, "DHCPACK(br0) " + lease.address().getHostAddress(), 10_000);
                    check(tail.contains("DHCPACK(br0) " + lease.address().getHostAddress()),
                            "the lease confirmed over the new connection:\n" + tail);
                }
            }
        });
    }

    /**
     * A stand-in TCP peer: accepts {@code tcp://127.0.0.1:port?len=2} connections and relays
     * their frames to the lab's kernel VXLAN endpoint and back. {@link #kill()} closes the
     * listening socket and the connection; {@link #restart()} listens again on the same port.
     */
    static final class Relay implements AutoCloseable {
        final int port;
        private final InetSocketAddress vtep;
        private final int vni;
        private final DatagramSocket udp;
        private volatile ServerSocket server;
        private volatile Socket conn;
        private volatile boolean closed;
        private final Thread fromLink;

        Relay(String vxlanUrl) throws IOException {
            vtep = new InetSocketAddress(InetAddress.getByName(vxlanUrl.replaceAll("^vxlan://([^:]+):.*$", "$1")), 4789);
            vni = Integer.parseInt(vxlanUrl.replaceAll("^.*vni=(\\d+).*$", "$1"));
            udp = new DatagramSocket(new InetSocketAddress(4789));
            server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
            port = server.getLocalPort();
            startAccepting(server);
            fromLink = new Thread(this::vxlanToTcp, "relay-vxlan");
            fromLink.setDaemon(true);
            fromLink.start();
        }

        private void startAccepting(ServerSocket s) {
            Thread t = new Thread(() -> {
                try {
                    while (!closed) {
                        Socket c = s.accept();
                        conn = c;
                        tcpToVxlan(c);
                    }
                } catch (IOException e) {
                    // killed or closed
                }
            }, "relay-accept");
            t.setDaemon(true);
            t.start();
        }

        private void tcpToVxlan(Socket c) {
            try (DataInputStream in = new DataInputStream(c.getInputStream())) {
                while (true) {
                    int len = in.readUnsignedShort();
                    byte[] dg = new byte[8 + len];
                    in.readFully(dg, 8, len);
                    dg[0] = 0x08;
                    dg[4] = (byte) (vni >> 16);
                    dg[5] = (byte) (vni >> 8);
                    dg[6] = (byte) vni;
                    udp.send(new DatagramPacket(dg, dg.length, vtep));
                }
            } catch (IOException e) {
                // the connection ended
            }
        }

        private void vxlanToTcp() {
            byte[] buf = new byte[2000];
            while (!closed) {
                try {
                    DatagramPacket p = new DatagramPacket(buf, buf.length);
                    udp.receive(p);
                    Socket c = conn;
                    if (c == null || p.getLength() <= 8) {
                        continue;
                    }
                    DataOutputStream out = new DataOutputStream(c.getOutputStream());
                    synchronized (this) {
                        out.writeShort(p.getLength() - 8);
                        out.write(buf, 8, p.getLength() - 8);
                        out.flush();
                    }
                } catch (IOException e) {
                    // a dead connection: frames are dropped until the next one
                }
            }
        }

        void kill() throws IOException {
            server.close();
            Socket c = conn;
            conn = null;
            if (c != null) {
                c.close();
            }
        }

        void restart() throws IOException {
            ServerSocket s = new ServerSocket();
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1);
            server = s;
            startAccepting(s);
        }

        @Override
        public void close() throws IOException {
            closed = true;
            kill();
            udp.close();
        }
    }
}
