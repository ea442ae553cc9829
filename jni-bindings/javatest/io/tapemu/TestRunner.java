package io.tapemu;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Host-JVM tests of the Java API against the real native library. Groups given as
 * arguments: {@code unit} (no privileges), {@code longrun} (frames and create/close churn,
 * checking sessions, threads and RSS), {@code lab} (root, inside the lab's phone namespace).
 * Ends with the line {@code N passed, N failed}; exits 1 if any failed.
 */
public final class TestRunner {
    private static int passed;
    private static int failed;

    interface Body {
        void run() throws Exception;
    }

    static void test(String name, Body body) {
        long t0 = System.nanoTime();
        try {
            body.run();
            passed++;
            System.out.printf("ok   %s (%d ms)%n", name, (System.nanoTime() - t0) / 1_000_000);
        } catch (Throwable t) {
            failed++;
            System.out.printf("FAIL %s: %s%n", name, t);
            t.printStackTrace(System.out);
        }
    }

    static void check(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    static <T extends Throwable> T expect(Class<T> type, Body body) throws Exception {
        try {
            body.run();
        } catch (Throwable t) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
            throw new AssertionError("expected " + type.getSimpleName() + ", got " + t, t);
        }
        throw new AssertionError("expected " + type.getSimpleName() + ", nothing thrown");
    }

    static final byte[] OUR_MAC = Frames.mac("02:00:5e:10:00:01");
    static final byte[] PEER_MAC = Frames.mac("02:00:5e:10:00:99");
    static final byte[] SERVER_MAC = Frames.mac("02:00:5e:10:00:fe");

    /** Listener recording everything, frames into a queue. */
    static class Recorder implements TapListener {
        final BlockingQueue<byte[]> frames = new LinkedBlockingQueue<>();
        final BlockingQueue<Lease> leases = new LinkedBlockingQueue<>();
        final BlockingQueue<String> stopped = new LinkedBlockingQueue<>();
        final List<Integer> protectedFds = new ArrayList<>();
        final AtomicReference<String> callbackThread = new AtomicReference<>();

        @Override
        public void onFrame(ByteBuffer frame) {
            callbackThread.set(Thread.currentThread().getName());
            byte[] b = new byte[frame.remaining()];
            frame.get(b);
            frames.add(b);
        }

        @Override
        public void onLeaseAcquired(Lease lease) {
            leases.add(lease);
        }

        @Override
        public synchronized boolean protect(int fd) {
            protectedFds.add(fd);
            return true;
        }

        @Override
        public void onStopped(String error) {
            stopped.add(error == null ? "" : error);
        }

        /** Next frame with the given EtherType, skipping others. */
        byte[] next(int etherType, long timeoutMs) throws InterruptedException {
            long end = System.currentTimeMillis() + timeoutMs;
            while (true) {
                long left = end - System.currentTimeMillis();
                byte[] f = frames.poll(Math.max(left, 0), TimeUnit.MILLISECONDS);
                if (f == null) {
                    return null;
                }
                if (Frames.etherType(f) == etherType) {
                    return f;
                }
            }
        }
    }

    static TapConfig staticCallback() {
        return TapConfig.builder().mac("02:00:5e:10:00:01").staticAddress("192.0.2.50", 24, "192.0.2.1").build();
    }

    // ---------------------------------------------------------------------------------------

    static void unitTests() {
        test("config: valid configurations pass validate()", () -> {
            TapEmulator.validate(staticCallback());
            TapEmulator.validate(TapConfig.builder().hostname("phone-1").mtu(1400)
                    .link("vxlan://198.51.100.1:4789?vni=42").build());
            TapEmulator.validate(TapConfig.builder().link("tcp://192.0.2.1:5000?len=4").build());
        });
        test("config: bad MAC, address, prefix, gateway, MTU, hostname, URL -> IllegalArgumentException", () -> {
            TapListener l = new TapListener() {};
            TapConfig[] bad = {
                TapConfig.builder().mac("02:00:5e:10:00").build(),
                TapConfig.builder().mac("not a mac").build(),
                TapConfig.builder().mac("01:00:5e:00:00:01").build(),
                TapConfig.builder().staticAddress("192.0.2.500", 24, null).build(),
                TapConfig.builder().staticAddress("192.0.2.5", 33, null).build(),
                TapConfig.builder().staticAddress("192.0.2.5", 24, "198.51.100.1").build(),
                TapConfig.builder().mtu(100).build(),
                TapConfig.builder().mtu(70000).build(),
                TapConfig.builder().hostname("bad host").build(),
                TapConfig.builder().link("ftp://192.0.2.1:21").build(),
                TapConfig.builder().link("vxlan://192.0.2.1:4789?vni=99999999").build(),
                TapConfig.builder().link("udp://nohost").build(),
            };
            long before = TapEmulator.nativeLiveSessions();
            long globals = TapEmulator.nativeLiveGlobalRefs();
            for (TapConfig c : bad) {
                IllegalArgumentException e = expect(IllegalArgumentException.class, () -> new TapEmulator(c, l));
                check(e.getMessage() != null && !e.getMessage().isEmpty(), "message for " + c);
                expect(IllegalArgumentException.class, () -> TapEmulator.validate(c));
            }
            check(TapEmulator.nativeLiveSessions() == before, "no session left behind by failed constructors");
            check(TapEmulator.nativeLiveGlobalRefs() == globals, "no global reference left behind");
        });

        jsonTests();

        test("callback mode: static address -> onLeaseAcquired and announcements", () -> {
            Recorder r = new Recorder();
            try (TapEmulator tap = new TapEmulator(staticCallback(), r)) {
                tap.start();
                Lease lease = r.leases.poll(5, TimeUnit.SECONDS);
                check(lease != null, "lease callback");
                check(lease.address().getHostAddress().equals("192.0.2.50"), "address " + lease);
                check(lease.prefixLength() == 24, "prefix");
                check(lease.gateway() != null && lease.gateway().getHostAddress().equals("192.0.2.1"), "gateway");
                check(lease.mtu() == 1500, "mtu");
                byte[] announce = r.next(0x0806, 5000);
                check(announce != null, "gratuitous ARP");
                check(Arrays.equals(Arrays.copyOfRange(announce, 6, 12), OUR_MAC), "announcement from our MAC");
                check(r.callbackThread.get() != null && r.callbackThread.get().startsWith("tapemu-"),
                        "listener runs on the emulator thread, was " + r.callbackThread.get());
            }
        });

        test("callback mode: ARP request for our address -> exact ARP reply frame", () -> {
            Recorder r = new Recorder();
            try (TapEmulator tap = new TapEmulator(staticCallback(), r)) {
                tap.start();
                check(r.leases.poll(5, TimeUnit.SECONDS) != null, "lease");
                Thread.sleep(100);
                r.frames.clear();
                byte[] req = Frames.arpRequest(PEER_MAC, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"));
                tap.sendFrame(req, 0, req.length);
                byte[] expected = Frames.arpReply(OUR_MAC, Frames.ip("192.0.2.50"), PEER_MAC, Frames.ip("192.0.2.1"));
                byte[] reply = null;
                for (int i = 0; i < 5 && reply == null; i++) {
                    byte[] f = r.next(0x0806, 3000);
                    if (f != null && f[21] == 2) {
                        reply = f;
                    }
                }
                check(reply != null, "ARP reply");
                check(Arrays.equals(Arrays.copyOf(reply, 42), expected),
                        "reply bytes " + Frames.hex(reply) + " expected " + Frames.hex(expected));
                // The same through a direct ByteBuffer.
                ByteBuffer direct = ByteBuffer.allocateDirect(64);
                direct.put(req).flip();
                tap.sendFrame(direct);
                check(direct.position() == 0, "position unchanged");
                byte[] again = r.next(0x0806, 3000);
                check(again != null && Arrays.equals(Arrays.copyOf(again, 42), expected), "reply via direct buffer");
                check(tap.stats().get("arp.replies_out") == 2, "arp_replies_out " + tap.stats());
            }
        });

        test("callback mode: DHCP exchange -> onLeaseAcquired with routes, DNS, domain, MTU", () -> {
            Recorder r = new Recorder();
            TapConfig cfg = TapConfig.builder().mac("02:00:5e:10:00:01").hostname("jvm-test").build();
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                Lease lease = serveDhcp(tap, r, "192.0.2.123", 15000);
                check(lease != null, "lease acquired");
                check(lease.address().getHostAddress().equals("192.0.2.123"), "address " + lease);
                check(lease.prefixLength() == 24, "prefix " + lease);
                check(lease.gateway().getHostAddress().equals("192.0.2.1"), "gateway " + lease);
                check(lease.dns().size() == 2 && lease.dns().get(1).getHostAddress().equals("192.0.2.2"), "dns " + lease);
                check("lab.example".equals(lease.domain()), "domain " + lease);
                check(lease.searchDomains().contains("lab.example"), "search " + lease);
                check(lease.mtu() == 1400, "mtu " + lease);
                check(lease.leaseTimeSeconds() == 3600, "lease time " + lease);
                check(lease.routes().contains(new Route(Lease.ip("0.0.0.0"), 0, Lease.ip("192.0.2.1"))), "default route " + lease);
                check(lease.routes().contains(new Route(Lease.ip("192.0.2.0"), 24, null)), "subnet route " + lease);
                check(lease.server().getHostAddress().equals("192.0.2.1"), "server");
            }
        });

        test("callback mode: recorded dnsmasq exchange (tests/data/dhcp-dnsmasq.pcap) -> acquired, renewed", () -> {
            // dnsmasq's replies from the recording, fed back with the xid of tapemu's own
            // request patched in; the client MAC is the recorded client's.
            List<byte[]> offers = new ArrayList<>();
            List<byte[]> acks = new ArrayList<>();
            for (byte[] f : Pcap.frames(Paths.get(System.getProperty("tapemu.data", "tests/data"), "dhcp-dnsmasq.pcap"))) {
                int type = Frames.dhcpServerType(f);
                if (type == 2) {
                    offers.add(f);
                } else if (type == 5) {
                    acks.add(f);
                }
            }
            check(offers.size() >= 1 && acks.size() >= 2, "recording has OFFER and ACKs");
            byte[] serverMac = Arrays.copyOfRange(offers.get(0), 6, 12);
            BlockingQueue<Lease> renewed = new LinkedBlockingQueue<>();
            Recorder r = new Recorder() {
                @Override
                public void onLeaseRenewed(Lease lease) {
                    renewed.add(lease);
                }
            };
            TapConfig cfg = TapConfig.builder().mac("02:00:00:00:00:64").build();
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                Lease lease = null;
                Lease renewal = null;
                int acksSent = 0;
                long end = System.currentTimeMillis() + 30000;
                while (renewal == null && System.currentTimeMillis() < end) {
                    if (lease == null) {
                        lease = r.leases.poll(0, TimeUnit.MILLISECONDS);
                    }
                    renewal = renewed.poll(0, TimeUnit.MILLISECONDS);
                    byte[] f = r.frames.poll(50, TimeUnit.MILLISECONDS);
                    if (f == null) {
                        continue;
                    }
                    if (Frames.etherType(f) == 0x0806 && f[21] == 1
                            && Frames.ipString(f, 38).equals("192.0.2.1")) {
                        byte[] reply = Frames.arpReply(serverMac, Frames.ip("192.0.2.1"),
                                Arrays.copyOfRange(f, 22, 28), Arrays.copyOfRange(f, 28, 32));
                        tap.sendFrame(reply, 0, reply.length);
                        continue;
                    }
                    Frames.Dhcp d = Frames.parseDhcpFromClient(f);
                    if (d == null) {
                        continue;
                    }
                    byte[] recorded = d.type == 1 ? offers.get(0) : d.type == 3 ? acks.get(Math.min(acksSent++, 1)) : null;
                    if (recorded != null) {
                        byte[] reply = Frames.withXid(recorded, d.xid);
                        tap.sendFrame(reply, 0, reply.length);
                    }
                }
                check(lease != null, "lease acquired");
                System.out.println("     lease: " + lease);
                check(lease.address().getHostAddress().equals("192.0.2.182"), "address as dhclient's lease file");
                check(lease.prefixLength() == 24 && lease.mtu() == 1400, "prefix, MTU");
                check(lease.gateway().getHostAddress().equals("192.0.2.1"), "gateway");
                check(lease.dns().size() == 1 && lease.dns().get(0).getHostAddress().equals("192.0.2.53"), "dns");
                check(lease.searchDomains().equals(Arrays.asList("lab.example", "corp.example")), "search " + lease.searchDomains());
                check("lab.example".equals(lease.domain()), "domain");
                check(lease.routes().contains(new Route(Lease.ip("198.51.100.0"), 24, Lease.ip("192.0.2.254"))),
                        "classless route " + lease.routes());
                check(lease.leaseTimeSeconds() == 600 && lease.renewSeconds() == 10, "times");
                check(renewal != null, "renewal after T1 = 10 s");
                check(renewal.address().equals(lease.address()), "same address");
            }
        });

        test("callback mode: recorded radvd RA (tests/data/ipv6-radvd.pcap) -> onIpv6Changed with a SLAAC address", () -> {
            List<byte[]> ras = new ArrayList<>();
            for (byte[] f : Pcap.frames(Paths.get(System.getProperty("tapemu.data", "tests/data"), "ipv6-radvd.pcap"))) {
                if (Frames.etherType(f) == 0x86dd && f.length > 54 && f[20] == 58 && (f[54] & 255) == 134) {
                    ras.add(f);
                }
            }
            check(!ras.isEmpty(), "recording has a router advertisement");
            BlockingQueue<Ipv6Info> infos = new LinkedBlockingQueue<>();
            Recorder r = new Recorder() {
                @Override
                public void onIpv6Changed(Ipv6Info info) {
                    infos.add(info);
                }
            };
            try (TapEmulator tap = new TapEmulator(staticCallback(), r)) {
                tap.start();
                Ipv6Info withAddress = null;
                long end = System.currentTimeMillis() + 15000;
                long nextRa = 0;
                while (withAddress == null && System.currentTimeMillis() < end) {
                    if (System.currentTimeMillis() >= nextRa) {
                        byte[] ra = ras.get(0);
                        tap.sendFrame(ra, 0, ra.length);
                        nextRa = System.currentTimeMillis() + 1000;
                    }
                    Ipv6Info info = infos.poll(100, TimeUnit.MILLISECONDS);
                    if (info != null && !info.addresses().isEmpty()) {
                        withAddress = info;
                    }
                }
                check(withAddress != null, "IPv6 address from SLAAC");
                System.out.println("     ipv6: " + withAddress);
                check(withAddress.addresses().get(0).address().getHostAddress().startsWith("2001:db8:1:0:"),
                        "address in the advertised prefix: " + withAddress.addresses());
                check(withAddress.addresses().get(0).prefixLength() == 64, "prefix length");
                check(withAddress.routes().contains(new Route(Lease.ip("::"), 0, Lease.ip("fe80::ff:fe00:1"))),
                        "default route via the router: " + withAddress.routes());
                check(withAddress.dns().contains(Lease.ip("2001:db8:1::53")), "RDNSS");
            }
        });

        test("config: ipv6(false) keeps IPv6 off", () -> {
            BlockingQueue<Ipv6Info> infos = new LinkedBlockingQueue<>();
            Recorder r = new Recorder() {
                @Override
                public void onIpv6Changed(Ipv6Info info) {
                    infos.add(info);
                }
            };
            TapConfig cfg = TapConfig.builder().mac("02:00:5e:10:00:01").staticAddress("192.0.2.50", 24, null)
                    .ipv6(false).build();
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                Thread.sleep(1500);
                check(infos.isEmpty(), "no IPv6 events");
                for (byte[] f : r.frames) {
                    check(Frames.etherType(f) != 0x86dd, "no IPv6 frames");
                }
            }
        });

        test("misuse: attachTun(-1), closed fd, before start -> exceptions", () -> {
            Recorder r = new Recorder();
            try (TapEmulator tap = new TapEmulator(staticCallback(), r)) {
                java.nio.file.Path fifo = Files.createTempDirectory("tapemu-misuse").resolve("tun");
                int notStarted = Fds.openFifo(fifo);
                expect(IllegalStateException.class, () -> tap.attachTun(notStarted)); // not started
                check(Fds.countOpen(fifo.toString()) == 0, "the fd is taken even before start");
                Files.delete(fifo);
                Files.delete(fifo.getParent());
                expect(IllegalStateException.class, () -> tap.sendFrame(new byte[60], 0, 60));
                tap.start();
                expect(IllegalStateException.class, tap::start);
                IOException e = expect(IOException.class, () -> tap.attachTun(-1));
                check(e.getMessage().contains("-1"), e.getMessage());
                expect(IOException.class, () -> tap.attachTun(987654));
                expect(IndexOutOfBoundsException.class, () -> tap.sendFrame(new byte[10], 5, 6));
                expect(IndexOutOfBoundsException.class, () -> tap.sendFrame(new byte[10], -1, 2));
                tap.detachTun(); // nothing attached: fine
            }
        });

        test("misuse: calls after close -> IllegalStateException; close twice is fine", () -> {
            Recorder r = new Recorder();
            TapEmulator tap = new TapEmulator(staticCallback(), r);
            tap.start();
            check(r.leases.poll(5, TimeUnit.SECONDS) != null, "lease");
            tap.close();
            tap.close();
            check(tap.isClosed(), "closed");
            check("".equals(r.stopped.poll(5, TimeUnit.SECONDS)), "onStopped(null) delivered before close returned");
            expect(IllegalStateException.class, tap::start);
            java.nio.file.Path fifo = Files.createTempDirectory("tapemu-closed").resolve("tun");
            int afterClose = Fds.openFifo(fifo);
            expect(IllegalStateException.class, () -> tap.attachTun(afterClose));
            check(Fds.countOpen(fifo.toString()) == 0, "the fd is taken by a closed emulator too");
            Files.delete(fifo);
            Files.delete(fifo.getParent());
            expect(IllegalStateException.class, tap::detachTun);
            expect(IllegalStateException.class, () -> tap.sendFrame(new byte[60], 0, 60));
            expect(IllegalStateException.class, () -> tap.sendFrame(ByteBuffer.allocateDirect(60)));
            check(tap.stats().get("arp.requests_out") >= 1, "last stats kept: " + tap.stats());
            TapEmulator never = new TapEmulator(staticCallback(), r);
            never.close();
            never.close();
        });

        test("misuse: stale or forged native handles -> IllegalStateException", () -> {
            expect(IllegalStateException.class, () -> invokeNative("nativeStart", 0L));
            expect(IllegalStateException.class, () -> invokeNative("nativeStart", 123456789L));
            expect(IllegalStateException.class, () -> invokeNative("nativeDetachTun", -5L));
            java.lang.reflect.Method close = TapEmulator.class.getDeclaredMethod("nativeClose", long.class, boolean.class);
            close.setAccessible(true);
            check(close.invoke(null, 987654321L, true) == null, "unknown: ignored");
        });

        test("misuse: sendFrame with a built-in link -> IllegalStateException", () -> {
            Recorder r = new Recorder();
            TapConfig cfg = TapConfig.builder().staticAddress("192.0.2.50", 24, null).link("udp://127.0.0.1:9").build();
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                expect(IllegalStateException.class, () -> tap.sendFrame(new byte[60], 0, 60));
                check(r.leases.poll(5, TimeUnit.SECONDS) != null, "link open");
                synchronized (r) {
                    check(r.protectedFds.size() == 1 && r.protectedFds.get(0) > 2, "protect(fd) called: " + r.protectedFds);
                }
            }
        });

        test("misuse: protect refusing or throwing -> onStopped(error), the emulator stopped", () -> {
            TapConfig cfg = TapConfig.builder().link("udp://127.0.0.1:9").build();
            for (TapListener l : new TapListener[] {
                new TapListener() {
                    @Override
                    public boolean protect(int fd) {
                        return false;
                    }
                },
                new TapListener() {
                    @Override
                    public boolean protect(int fd) {
                        throw new RuntimeException("listener bug (expected in this test)");
                    }
                },
            }) {
                BlockingQueue<String> stopped = new LinkedBlockingQueue<>();
                TapListener withStop = new TapListener() {
                    @Override
                    public boolean protect(int fd) {
                        return l.protect(fd);
                    }

                    @Override
                    public void onStopped(String error) {
                        stopped.add(String.valueOf(error));
                    }
                };
                try (TapEmulator tap = new TapEmulator(cfg, withStop)) {
                    tap.start();
                    String error = stopped.poll(5, TimeUnit.SECONDS);
                    check(error != null && error.contains("protect"), "onStopped with the reason: " + error);
                    IllegalStateException e = expect(IllegalStateException.class, tap::detachTun);
                    check(e.getMessage().contains("stopped"), e.getMessage());
                }
            }
        });

        test("re-entrancy: protect() calling back into the emulator during start() does not deadlock", () -> {
            AtomicReference<TapEmulator> self = new AtomicReference<>();
            AtomicReference<String> seen = new AtomicReference<>();
            CountDownLatch protectedOnce = new CountDownLatch(1);
            TapListener l = new TapListener() {
                @Override
                public boolean protect(int fd) {
                    TapEmulator t = self.get();
                    t.stats();
                    try {
                        t.attachTun(Fds.openDevNull());
                    } catch (IllegalStateException | IOException e) {
                        seen.set(e.getMessage());
                    }
                    protectedOnce.countDown();
                    return true;
                }
            };
            TapConfig cfg = TapConfig.builder().link("udp://127.0.0.1:9").build();
            try (TapEmulator tap = new TapEmulator(cfg, l)) {
                self.set(tap);
                tap.start();
                check(protectedOnce.await(5, TimeUnit.SECONDS), "protect called");
                check(seen.get() != null && seen.get().contains("starting"), "saw it starting: " + seen.get());
                tap.detachTun();
            }
        });

        test("misuse: a listener that throws does not stop the emulator", () -> {
            AtomicInteger calls = new AtomicInteger();
            TapListener l = new TapListener() {
                @Override
                public void onFrame(ByteBuffer frame) {
                    calls.incrementAndGet();
                    throw new IllegalStateException("listener bug (expected in this test)");
                }

                @Override
                public void onLeaseAcquired(Lease lease) {
                    throw new RuntimeException("listener bug (expected in this test)");
                }
            };
            try (TapEmulator tap = new TapEmulator(staticCallback(), l)) {
                tap.start();
                byte[] req = Frames.arpRequest(PEER_MAC, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"));
                for (int i = 0; i < 20; i++) {
                    tap.sendFrame(req, 0, req.length);
                }
                long end = System.currentTimeMillis() + 5000;
                while ((tap.stats().get("arp.replies_out") < 20 || tap.stats().listenerErrors() < 21)
                        && System.currentTimeMillis() < end) {
                    Thread.sleep(20);
                }
                TapStats s = tap.stats();
                check(s.get("arp.replies_out") == 20, "still answering: " + s);
                check(s.listenerErrors() >= 21, "listener errors counted: " + s.listenerErrors());
                check(calls.get() >= 20, "onFrame calls " + calls.get());
            }
        });

        test("misuse: garbage frames are counted, not fatal", () -> {
            Recorder r = new Recorder();
            try (TapEmulator tap = new TapEmulator(staticCallback(), r)) {
                tap.start();
                java.util.Random rnd = new java.util.Random(1);
                tap.sendFrame(new byte[0], 0, 0);
                tap.sendFrame(new byte[1], 0, 1);
                for (int i = 0; i < 200; i++) {
                    byte[] g = new byte[rnd.nextInt(1600)];
                    rnd.nextBytes(g);
                    if (i % 2 == 0 && g.length >= 6) {
                        System.arraycopy(OUR_MAC, 0, g, 0, 6);
                    }
                    tap.sendFrame(g, 0, g.length);
                }
                byte[] huge = new byte[65535 + 14];
                tap.sendFrame(huge, 0, huge.length);
                long end = System.currentTimeMillis() + 5000;
                while (seen(tap.stats()) < 203 && System.currentTimeMillis() < end) {
                    Thread.sleep(20);
                }
                TapStats s = tap.stats();
                check(seen(s) == 203, "all frames seen: " + s);
                check(s.get("callback_frames_dropped") == 1, "the empty frame is dropped before the emulator: " + s);
                check(s.dropsTotal() >= 200, "dropped and counted: " + s);
            }
        });

        test("close() from inside a listener returns and stops the emulator", () -> {
            AtomicReference<TapEmulator> self = new AtomicReference<>();
            CountDownLatch closed = new CountDownLatch(1);
            CountDownLatch stopped = new CountDownLatch(1);
            TapListener l = new TapListener() {
                @Override
                public void onLeaseAcquired(Lease lease) {
                    self.get().close();
                    closed.countDown();
                }

                @Override
                public void onStopped(String error) {
                    stopped.countDown();
                }
            };
            TapEmulator tap = new TapEmulator(staticCallback(), l);
            self.set(tap);
            tap.start();
            check(closed.await(5, TimeUnit.SECONDS), "close returned inside the listener");
            check(stopped.await(5, TimeUnit.SECONDS), "stopped");
            check(tap.isClosed(), "closed");
        });

        ApiTests.run();

        test("LinuxTun.open: bad names -> IllegalArgumentException", () -> {
            expect(IllegalArgumentException.class, () -> LinuxTun.open(""));
            expect(IllegalArgumentException.class, () -> LinuxTun.open("a-very-long-interface-name"));
            expect(IllegalArgumentException.class, () -> LinuxTun.open(null));
            expect(IllegalArgumentException.class, () -> LinuxTun.openWithOffloads(""));
            expect(IllegalArgumentException.class, () -> LinuxTun.openWithOffloads(null));
        });
    }

    /** The lease line the README shows for {@code tapemu lease --json}. */
    static final String README_LEASE = "{\"event\":\"lease\",\"address\":\"192.0.2.123\",\"prefix\":24,"
            + "\"gateway\":\"192.0.2.1\",\"dns\":[\"192.0.2.53\"],\"domain\":\"lab.example\","
            + "\"search\":[\"lab.example\"],\"mtu\":1500,\"routes\":[{\"destination\":\"192.0.2.0/24\","
            + "\"gateway\":null},{\"destination\":\"0.0.0.0/0\",\"gateway\":\"192.0.2.1\"}],"
            + "\"lease_seconds\":3600,\"t1_seconds\":1800,\"t2_seconds\":3150,"
            + "\"broadcast\":\"192.0.2.255\",\"server\":\"192.0.2.1\"}";

    static void jsonTests() {
        test("json: the README's lease line -> Lease", () -> {
            Lease l = Lease.parse(README_LEASE);
            check(l.address().getHostAddress().equals("192.0.2.123") && l.prefixLength() == 24, "address " + l);
            check(l.gateway().getHostAddress().equals("192.0.2.1"), "gateway");
            check(l.dns().equals(Arrays.asList(Lease.ip("192.0.2.53"))), "dns");
            check("lab.example".equals(l.domain()) && l.searchDomains().equals(Arrays.asList("lab.example")), "search");
            check(l.mtu() == 1500, "mtu");
            check(l.routes().equals(Arrays.asList(new Route(Lease.ip("192.0.2.0"), 24, null),
                    new Route(Lease.ip("0.0.0.0"), 0, Lease.ip("192.0.2.1")))), "routes " + l.routes());
            check(l.leaseTimeSeconds() == 3600 && l.renewSeconds() == 1800 && l.rebindSeconds() == 3150, "times");
            check(l.broadcast().getHostAddress().equals("192.0.2.255"), "broadcast");
            check(l.server().getHostAddress().equals("192.0.2.1"), "server");
        });
        test("json: a static address (ipv4 event) and an infinite lease -> -1 times, no server", () -> {
            Lease l = Lease.parse("{\"event\":\"ipv4\",\"address\":\"192.0.2.50\",\"prefix\":24,\"gateway\":null,"
                    + "\"routes\":[{\"destination\":\"192.0.2.0/24\",\"gateway\":null}],\"mtu\":1400}");
            check(l.gateway() == null && l.server() == null && l.broadcast() == null && l.domain() == null, "nulls " + l);
            check(l.leaseTimeSeconds() == -1 && l.renewSeconds() == -1 && l.rebindSeconds() == -1, "times");
            check(l.dns().isEmpty() && l.searchDomains().isEmpty() && l.mtu() == 1400, "rest " + l);
            Lease inf = Lease.parse(README_LEASE.replace("\"lease_seconds\":3600", "\"lease_seconds\":null"));
            check(inf.leaseTimeSeconds() == -1, "infinite");
        });
        test("json: the ipv6 event -> Ipv6Info", () -> {
            Ipv6Info i = Ipv6Info.parse("{\"event\":\"ipv6\",\"addresses\":[\"2001:db8:1::5/64\"],"
                    + "\"link_local\":\"fe80::ff:fe00:1\",\"routes\":[{\"destination\":\"2001:db8:1::/64\",\"gateway\":null},"
                    + "{\"destination\":\"::/0\",\"gateway\":\"fe80::1\"}],\"dns\":[\"2001:db8:1::53\"],"
                    + "\"search\":[\"lab.example\"],\"mtu\":null}");
            check(i.addresses().size() == 1 && i.addresses().get(0).prefixLength() == 64, "addresses " + i);
            check(i.linkLocal().equals(Lease.ip("fe80::ff:fe00:1")), "link-local");
            check(i.routes().contains(new Route(Lease.ip("::"), 0, Lease.ip("fe80::1"))), "default route");
            check(i.dns().equals(Arrays.asList(Lease.ip("2001:db8:1::53"))), "dns");
            check(i.searchDomains().equals(Arrays.asList("lab.example")) && i.mtu() == -1, "search, mtu");
            check(Ipv6Info.parse("{\"addresses\":[],\"link_local\":null,\"routes\":[],\"dns\":[],\"search\":[],"
                    + "\"mtu\":1280}").mtu() == 1280, "mtu");
        });
        test("json: the reader takes what RFC 8259 allows", () -> {
            Json.Obj o = Json.parseObject(" {\"s\":\"a\\\"b\\\\c\\/d\\u00e9\\n\\ud83d\\ude00\",\"n\":-12,\"z\":0,"
                    + "\"f\":1.5e3,\"t\":true,\"x\":false,\"u\":null,\"a\":[[],{},[1,\"2\",null]],\"o\":{\"k\":{}}}\r\n\t");
            check(o.string("s").equals("a\"b\\c/d\u00e9\n\ud83d\ude00"), "escapes: " + o.string("s"));
            check(o.integer("n") == -12 && o.integer("z") == 0, "integers");
            check(!o.has("u") && o.optString("u") == null && o.optInteger("u", 7) == 7, "null");
            check(o.object("o").object("k") != null, "nested");
            check(o.strings("absent").isEmpty(), "absent array");
            check(Json.parseObject("{}").toString().equals("{}"), "empty");
        });
        test("json: malformed or unexpected input -> IllegalArgumentException, never a crash", () -> {
            StringBuilder deep = new StringBuilder("{\"a\":");
            for (int i = 0; i < 100000; i++) {
                deep.append('[');
            }
            String[] bad = {
                null, "", " ", "[]", "\"x\"", "1", "null", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
                "{,}", "{\"a\":1}x", "{\"a\":1}{}", "{'a':1}", "{a:1}", "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}",
                "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":NaN}", "{\"a\":tru}", "{\"a\":nul}",
                "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"tab\there\"}",
                "{\"a\":\"open}", "{\"a\":[1,2}", "{\"a\":[1,]}", "{\"a\":1,\"a\":2}", "{\"a\":99999999999999999999}",
                "{\"a\":1} // comment", "\u00a0{}", "{\"a\":\"\\u\u0663\u0663\u0663\u0663\"}", deep.toString(),
            };
            for (String b : bad) {
                expect(IllegalArgumentException.class, () -> Json.parseObject(b));
            }
            // Well-formed, but not a lease: the same exception.
            String[] notLeases = {
                "{}", "{\"address\":\"192.0.2.1\"}", "{\"address\":5,\"prefix\":24,\"mtu\":1500}",
                "{\"address\":\"192.0.2.256\",\"prefix\":24,\"mtu\":1500}",
                "{\"address\":\"192.0.2.1.\",\"prefix\":24,\"mtu\":1500}",
                "{\"address\":\"example.com\",\"prefix\":24,\"mtu\":1500}",
                "{\"address\":\"192.0.2.1\",\"prefix\":\"24\",\"mtu\":1500}",
                "{\"address\":\"192.0.2.1\",\"prefix\":24,\"mtu\":1.5}",
                "{\"address\":\"192.0.2.1\",\"prefix\":24,\"mtu\":1500,\"routes\":[{\"destination\":\"0.0.0.0\"}]}",
                "{\"address\":\"192.0.2.1\",\"prefix\":24,\"mtu\":1500,\"routes\":{}}",
                "{\"address\":\"192.0.2.1\",\"prefix\":24,\"mtu\":1500,\"dns\":[1]}",
                "{\"address\":\"zz:1\",\"prefix\":24,\"mtu\":1500}",
            };
            for (String b : notLeases) {
                expect(IllegalArgumentException.class, () -> Lease.parse(b));
            }
            expect(IllegalArgumentException.class, () -> Ipv6Info.parse("{\"addresses\":[\"2001:db8::1\"]}"));
            expect(IllegalArgumentException.class, () -> Ipv6Info.parse("{\"addresses\":[\"2001:db8::1/x\"]}"));
        });
    }

    /** Plays a DHCP server on the callback link; returns the lease the listener got. */
    static Lease serveDhcp(TapEmulator tap, Recorder r, String address, long timeoutMs) throws Exception {
        long end = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < end) {
            Lease l = r.leases.poll(1, TimeUnit.MILLISECONDS);
            if (l != null) {
                return l;
            }
            byte[] f = r.frames.poll(50, TimeUnit.MILLISECONDS);
            if (f == null) {
                continue;
            }
            Frames.Dhcp d = Frames.parseDhcpFromClient(f);
            if (d == null) {
                continue;
            }
            byte[] reply = null;
            if (d.type == 1) {
                reply = Frames.dhcpReply(d, 2, SERVER_MAC, address);
            } else if (d.type == 3) {
                reply = Frames.dhcpReply(d, 5, SERVER_MAC, address);
            }
            if (reply != null) {
                tap.sendFrame(reply, 0, reply.length);
            }
        }
        return r.leases.poll(1, TimeUnit.MILLISECONDS);
    }

    static void invokeNative(String name, long handle) throws Exception {
        java.lang.reflect.Method m = TapEmulator.class.getDeclaredMethod(name, long.class);
        m.setAccessible(true);
        try {
            m.invoke(null, handle);
        } catch (java.lang.reflect.InvocationTargetException e) {
            Throwable c = e.getCause();
            if (c instanceof Exception) {
                throw (Exception) c;
            }
            throw new RuntimeException(c);
        }
    }

    // ---------------------------------------------------------------------------------------

    static long status(String key) throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (line.startsWith(key + ":")) {
                return Long.parseLong(line.substring(key.length() + 1).trim().split("\\s+")[0]);
            }
        }
        return -1;
    }

    static long seen(TapStats s) {
        return s.get("link.frames_in") + s.get("callback_frames_dropped");
    }

    static void longRunTests(int frames) {
        test("long run: " + frames + " frames through callbacks, no growth in RSS", () -> {
            Recorder sink = new Recorder() {
                final AtomicInteger n = new AtomicInteger();

                @Override
                public void onFrame(ByteBuffer frame) {
                    n.incrementAndGet(); // keep nothing
                }
            };
            try (TapEmulator tap = new TapEmulator(staticCallback(), sink)) {
                tap.start();
                byte[] arp = Frames.arpRequest(PEER_MAC, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"));
                byte[] data = Frames.udpFrame(OUR_MAC, PEER_MAC, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"),
                        5000, 5000, new byte[1000]);
                ByteBuffer direct = ByteBuffer.allocateDirect(data.length);
                direct.put(data).flip();
                long rssWarm = 0;
                int warm = frames / 5;
                for (int i = 0; i < frames; i++) {
                    if (i % 2 == 0) {
                        tap.sendFrame(arp, 0, arp.length);
                    } else {
                        tap.sendFrame(direct);
                    }
                    if (i % 500 == 499) {
                        // let the emulator keep up, as a real link would
                        long until = System.currentTimeMillis() + 10000;
                        while (seen(tap.stats()) < i - 500 && System.currentTimeMillis() < until) {
                            Thread.sleep(1);
                        }
                    }
                    if (i == warm) {
                        System.gc();
                        rssWarm = status("VmRSS");
                    }
                }
                long end = System.currentTimeMillis() + 30000;
                while (seen(tap.stats()) < frames && System.currentTimeMillis() < end) {
                    Thread.sleep(10);
                }
                System.gc();
                Thread.sleep(200);
                long rssEnd = status("VmRSS");
                TapStats s = tap.stats();
                System.out.printf("     rss after warm-up %d kB, at end %d kB; %s%n", rssWarm, rssEnd, s);
                check(s.get("link.frames_in") + s.get("callback_frames_dropped") == frames, "all frames accounted");
                check(s.get("arp.replies_out") > frames / 4, "replies " + s.get("arp.replies_out"));
                check(rssEnd - rssWarm < 32 * 1024, "RSS grew by " + (rssEnd - rssWarm) + " kB");
            }
        });

        test("long run: create/start/close 300 emulators, no sessions, threads or RSS left", () -> {
            long liveBefore = TapEmulator.nativeLiveSessions();
            long globalsBefore = TapEmulator.nativeLiveGlobalRefs();
            long threadsBefore = 0;
            long rssWarm = 0;
            for (int i = 0; i < 300; i++) {
                Recorder r = new Recorder();
                try (TapEmulator tap = new TapEmulator(staticCallback(), r)) {
                    tap.start();
                    tap.stats();
                }
                if (i == 49) {
                    System.gc();
                    rssWarm = status("VmRSS");
                    threadsBefore = status("Threads");
                }
            }
            System.gc();
            Thread.sleep(200);
            long rssEnd = status("VmRSS");
            long threads = status("Threads");
            System.out.printf("     rss %d -> %d kB, threads %d -> %d%n", rssWarm, rssEnd, threadsBefore, threads);
            check(TapEmulator.nativeLiveSessions() == liveBefore, "sessions left: " + TapEmulator.nativeLiveSessions());
            check(TapEmulator.nativeLiveGlobalRefs() == globalsBefore,
                    "JNI global refs " + globalsBefore + " -> " + TapEmulator.nativeLiveGlobalRefs());
            check(threads <= threadsBefore + 2, "threads grew " + threadsBefore + " -> " + threads);
            check(rssEnd - rssWarm < 32 * 1024, "RSS grew by " + (rssEnd - rssWarm) + " kB");
        });
    }

    // ---------------------------------------------------------------------------------------

    /**
     * Opens the TUN {@code name} (with offloads or plain) in this namespace, gives it the
     * lease's address and MTU and sets it up; returns its fd for {@code attachTun}.
     */
    static int labTun(String name, Lease lease, boolean offloads) throws IOException, InterruptedException {
        int fd = offloads ? LinuxTun.openWithOffloads(name) : LinuxTun.open(name);
        sh("ip", "addr", "add", lease.address().getHostAddress() + "/" + lease.prefixLength(), "dev", name);
        sh("ip", "link", "set", name, "mtu", String.valueOf(lease.mtu()), "up");
        return fd;
    }

    /** Waits up to 5 s for a TCP listener on {@code port} in the namespace {@code ns}. */
    static void awaitListening(String ns, String port) throws IOException, InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!sh("ip", "netns", "exec", ns, "ss", "-ltn").contains(":" + port + " ")) {
            check(System.nanoTime() < end, "a listener on port " + port + " in " + ns);
            Thread.sleep(20);
        }
    }

    static String sha256(byte[] data) throws java.security.NoSuchAlgorithmException {
        return hex(java.security.MessageDigest.getInstance("SHA-256").digest(data));
    }

    static String hex(byte[] bytes) {
        StringBuilder sb = new StringBuilder();
        for (byte b : bytes) {
            sb.append(String.format("%02x", b & 0xff));
        }
        return sb.toString();
    }

    static String sh(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        int rc = p.waitFor();
        if (rc != 0) {
            throw new IOException(String.join(" ", cmd) + " exited " + rc + ": " + out);
        }
        return out;
    }

    static void labTests(String linkUrl, String lanHost) {
        test("lab: built-in vxlan link, dnsmasq lease, protect(fd), TUN attached, ping " + lanHost
                + ", DHCPRELEASE on close", () -> {
            Recorder r = new Recorder();
            TapConfig cfg = TapConfig.builder().hostname("jvm-lab").link(linkUrl).build();
            String leased = null;
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                Lease lease = r.leases.poll(30, TimeUnit.SECONDS);
                check(lease != null, "lease from dnsmasq");
                synchronized (r) {
                    check(!r.protectedFds.isEmpty(), "protect called before connect");
                }
                System.out.println("     lease: " + lease);
                String addr = lease.address().getHostAddress();
                leased = addr;
                check(addr.startsWith("192.0.2."), "address in the lab range: " + addr);
                check(lease.gateway() != null && lease.gateway().getHostAddress().equals("192.0.2.1"), "gateway");
                check(!lease.dns().isEmpty(), "dns");
                int fd = labTun("tpjni0", lease, false);
                tap.attachTun(fd);
                String out = sh("ping", "-c", "3", "-i", "0.2", "-W", "3", lanHost);
                System.out.println("     " + out.trim().replace("\n", "\n     "));
                TapStats s = tap.stats();
                check(s.get("tun.packets_in") >= 3 && s.get("tun.packets_out") >= 3, "packets both ways: " + s);
                tap.detachTun();
                check(tap.stats().get("tun_attached") == 0, "detached");
            }
            check(r.stopped.poll(5, TimeUnit.SECONDS) != null, "stopped");
            String log = System.getProperty("tapemu.dnsmasqlog");
            if (log != null) {
                String want = "DHCPRELEASE(br0) " + leased + " ";
                boolean released = false;
                long end = System.currentTimeMillis() + 3000;
                while (!released && System.currentTimeMillis() < end) {
                    released = new String(Files.readAllBytes(Paths.get(log))).contains(want);
                    Thread.sleep(50);
                }
                check(released, "dnsmasq logged " + want.trim());
            }
        });

        test("lab: LinuxTun.openWithOffloads: 20 MB each way over TCP with " + lanHost
                + ", bytes intact, through 64 KiB super-segments split and coalesced", () -> {
            String hostNs = System.getProperty("tapemu.hostns");
            check(hostNs != null, "-Dtapemu.hostns names the LAN host's namespace");
            Recorder r = new Recorder();
            TapConfig cfg = TapConfig.builder().hostname("jvm-offload").link(linkUrl).build();
            try (TapEmulator tap = new TapEmulator(cfg, r)) {
                tap.start();
                Lease lease = r.leases.poll(30, TimeUnit.SECONDS);
                check(lease != null, "lease from dnsmasq");
                int fd = labTun("tpjoff0", lease, true);
                tap.attachTun(fd);
                // 20 MB of pseudo-random bytes each way over TCP, compared by SHA-256: the
                // LAN host's end is socat in its namespace, ours plain sockets in this one.
                byte[] data = new byte[20_000_000];
                new java.util.Random(42).nextBytes(data);
                String want = sha256(data);
                java.nio.file.Path dir = Files.createTempDirectory("tpjoff");
                java.nio.file.Path sum = dir.resolve("sum");
                java.nio.file.Path file = dir.resolve("data");
                Files.write(file, data);
                try {
                    Process server = new ProcessBuilder("ip", "netns", "exec", hostNs, "sh", "-c",
                            "socat -u TCP-LISTEN:5311,reuseaddr - | sha256sum > " + sum)
                            .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                            .redirectError(ProcessBuilder.Redirect.INHERIT).start();
                    awaitListening(hostNs, "5311");
                    try (java.net.Socket out = new java.net.Socket()) {
                        out.connect(new InetSocketAddress(lanHost, 5311), 5000);
                        out.getOutputStream().write(data);
                    }
                    check(server.waitFor(30, TimeUnit.SECONDS), "the host received to the end");
                    String got = new String(Files.readAllBytes(sum)).split(" ")[0];
                    check(want.equals(got), "phone -> host: sha256 " + got + ", sent " + want);

                    try (java.net.ServerSocket listen = new java.net.ServerSocket(5312, 1, lease.address())) {
                        listen.setSoTimeout(10_000);
                        Process client = new ProcessBuilder("ip", "netns", "exec", hostNs, "socat", "-u",
                                "FILE:" + file, "TCP:" + lease.address().getHostAddress() + ":5312")
                                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
                        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
                        long n = 0;
                        try (java.net.Socket in = listen.accept()) {
                            in.setSoTimeout(10_000);
                            byte[] buf = new byte[1 << 16];
                            for (int k; (k = in.getInputStream().read(buf)) > 0; n += k) {
                                md.update(buf, 0, k);
                            }
                        }
                        check(client.waitFor(30, TimeUnit.SECONDS), "the host sent to the end");
                        got = hex(md.digest());
                        check(n == data.length && want.equals(got),
                                "host -> phone: " + n + " bytes, sha256 " + got + ", sent " + want);
                    }
                } finally {
                    Files.deleteIfExists(sum);
                    Files.deleteIfExists(file);
                    Files.deleteIfExists(dir);
                }
                TapStats s = tap.stats();
                check(s.get("tun_super_segments_in") > 0, "super-segments read from the TUN: " + s);
                check(s.get("tun_super_segments_out") > 0, "super-segments written to the TUN: " + s);
                check(s.get("tun_dropped_in") == 0, "nothing from the TUN dropped: " + s);
            }
        });

        test("lab: callback mode carried over VXLAN by the app, DHCP from dnsmasq", () -> {
            // The "app's own protocol" here is VXLAN spoken in Java: frames from onFrame are
            // wrapped and sent to the lab's kernel vxlan0; datagrams from it go to sendFrame.
            InetSocketAddress vtep = new InetSocketAddress(InetAddress.getByName(
                    linkUrl.replaceAll("^vxlan://([^:]+):.*$", "$1")), 4789);
            int vni = Integer.parseInt(linkUrl.replaceAll("^.*vni=(\\d+).*$", "$1"));
            try (DatagramSocket sock = new DatagramSocket(new InetSocketAddress(4789))) {
                sock.setSoTimeout(200);
                TapListener l = new Recorder() {
                    @Override
                    public void onFrame(ByteBuffer frame) {
                        byte[] dg = new byte[8 + frame.remaining()];
                        dg[0] = 0x08;
                        dg[4] = (byte) (vni >> 16);
                        dg[5] = (byte) (vni >> 8);
                        dg[6] = (byte) vni;
                        frame.get(dg, 8, frame.remaining());
                        try {
                            sock.send(new DatagramPacket(dg, dg.length, vtep));
                        } catch (IOException e) {
                            throw new RuntimeException(e);
                        }
                    }
                };
                Recorder r = (Recorder) l;
                try (TapEmulator tap = new TapEmulator(TapConfig.builder().hostname("jvm-cb").build(), l)) {
                    tap.start();
                    byte[] buf = new byte[2000];
                    long end = System.currentTimeMillis() + 30000;
                    Lease lease = null;
                    while (lease == null && System.currentTimeMillis() < end) {
                        DatagramPacket p = new DatagramPacket(buf, buf.length);
                        try {
                            sock.receive(p);
                            if (p.getLength() > 8 && (buf[0] & 0x08) != 0) {
                                tap.sendFrame(buf, 8, p.getLength() - 8);
                            }
                        } catch (java.net.SocketTimeoutException timeout) {
                            // poll the lease below
                        }
                        lease = r.leases.poll(0, TimeUnit.MILLISECONDS);
                    }
                    check(lease != null, "lease through the app's own link");
                    System.out.println("     lease: " + lease);
                    check(lease.address().getHostAddress().startsWith("192.0.2."), "address " + lease);
                }
            }
        });
    }

    public static void main(String[] args) {
        long globalsAtStart = TapEmulator.nativeLiveGlobalRefs();
        List<String> groups = Arrays.asList(args.length == 0 ? new String[] {"unit"} : args);
        if (groups.contains("unit")) {
            unitTests();
            PhoneLifeTests.unitTests();
            SocketPairTests.unitTests();
        }
        if (groups.contains("longrun")) {
            longRunTests(Integer.getInteger("tapemu.frames", 200_000));
        }
        if (groups.contains("lab")) {
            labTests(System.getProperty("tapemu.link", "vxlan://198.51.100.1:4789?vni=42"),
                    System.getProperty("tapemu.lanhost", "192.0.2.10"));
            SocketPairTests.labTests(System.getProperty("tapemu.link", "vxlan://198.51.100.1:4789?vni=42"),
                    System.getProperty("tapemu.lanhost", "192.0.2.10"));
            PhoneLifeTests.labTests(System.getProperty("tapemu.link", "vxlan://198.51.100.1:4789?vni=42"),
                    System.getProperty("tapemu.dnsmasqlog"));
        }
        test("every emulator closed: no native session or JNI global reference left", () -> {
            // An emulator closed from its own listener finishes its thread asynchronously.
            long end = System.currentTimeMillis() + 3000;
            while (TapEmulator.nativeLiveGlobalRefs() != globalsAtStart && System.currentTimeMillis() < end) {
                Thread.sleep(10);
            }
            check(TapEmulator.nativeLiveSessions() == 0, "sessions " + TapEmulator.nativeLiveSessions());
            check(TapEmulator.nativeLiveGlobalRefs() == globalsAtStart,
                    "global refs " + globalsAtStart + " -> " + TapEmulator.nativeLiveGlobalRefs());
        });
        finish();
    }

    /** Prints {@code N passed, N failed} and exits (1 on failures). */
    static void finish() {
        System.out.println(passed + " passed, " + failed + " failed");
        System.out.flush();
        // Emulator threads are attached to the JVM; exit explicitly rather than wait for them.
        System.exit(failed == 0 ? 0 : 1);
    }
}
