package io.tapemu;

import static io.tapemu.TestRunner.OUR_MAC;
import static io.tapemu.TestRunner.PEER_MAC;
import static io.tapemu.TestRunner.check;
import static io.tapemu.TestRunner.expect;
import static io.tapemu.TestRunner.test;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
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

/** Tests of the app-facing contract: async start, fd ownership, protect, close, batches. */
final class ApiTests {
    private ApiTests() {}

    /** A listener that keeps batches' frames and the stop reason. */
    static class BatchRecorder extends TestRunner.Recorder {
        final AtomicInteger batches = new AtomicInteger();

        @Override
        public void onFrames(ByteBuffer batch) {
            batches.incrementAndGet();
            while (batch.hasRemaining()) {
                byte[] f = new byte[batch.getInt()];
                batch.get(f);
                frames.add(f);
            }
        }
    }

    /** Frames in the batch layout: a 4-byte big-endian length, then the frame. */
    static ByteBuffer batchOf(List<byte[]> frames, boolean direct) {
        int n = 0;
        for (byte[] f : frames) {
            n += 4 + f.length;
        }
        ByteBuffer b = direct ? ByteBuffer.allocateDirect(n) : ByteBuffer.allocate(n);
        for (byte[] f : frames) {
            b.putInt(f.length).put(f);
        }
        b.flip();
        return b;
    }

    static void run() {
        test("start() returns at once against a TCP peer that never answers; the timeout arrives as onStopped", () -> {
            // A listener whose accept queue is full and never accepted: the kernel drops the
            // emulator's SYNs, so its connect hangs until the link timeout.
            InetAddress lo = InetAddress.getLoopbackAddress();
            try (ServerSocket full = new ServerSocket(0, 1, lo)) {
                List<SocketChannel> fillers = new ArrayList<>();
                try {
                    for (int i = 0; i < 8; i++) {
                        SocketChannel c = SocketChannel.open();
                        c.configureBlocking(false);
                        c.connect(new InetSocketAddress(lo, full.getLocalPort()));
                        fillers.add(c);
                    }
                    TestRunner.Recorder r = new TestRunner.Recorder();
                    TapConfig cfg = TapConfig.builder().linkTimeoutMillis(1000)
                            .link("tcp://127.0.0.1:" + full.getLocalPort()).build();
                    try (TapEmulator tap = new TapEmulator(cfg, r)) {
                        long t0 = System.nanoTime();
                        tap.start();
                        long ms = (System.nanoTime() - t0) / 1_000_000;
                        System.out.println("     start() returned in " + ms + " ms");
                        check(r.stopped.isEmpty(), "start() returned before the link failed");
                        tap.stats(); // fine while the link opens
                        tap.detachTun(); // nothing attached: a no-op while starting
                        String error = r.stopped.poll(10, TimeUnit.SECONDS);
                        check(error != null && error.contains("not open within 1000 ms"), "onStopped: " + error);
                        expect(IllegalStateException.class, tap::start);
                    }
                } finally {
                    for (SocketChannel c : fillers) {
                        c.close();
                    }
                }
            }
        });

        test("start() fails fast for a built-in link whose listener does not implement protect", () -> {
            TapConfig cfg = TapConfig.builder().link("udp://127.0.0.1:9").build();
            try (TapEmulator tap = new TapEmulator(cfg, new TapListener() {})) {
                IllegalStateException e = expect(IllegalStateException.class, tap::start);
                check(e.getMessage().contains("protect") && e.getMessage().contains("protectSockets(false)"),
                        e.getMessage());
            }
            // Opting out, on a desktop JVM: starts, and protect is never called.
            AtomicInteger protects = new AtomicInteger();
            BlockingQueue<Lease> leases = new LinkedBlockingQueue<>();
            TapListener noProtect = new TapListener() {
                @Override
                public void onLeaseAcquired(Lease lease) {
                    leases.add(lease);
                }
            };
            TapConfig optOut = TapConfig.builder().staticAddress("192.0.2.50", 24, null)
                    .link("udp://127.0.0.1:9").protectSockets(false).build();
            try (TapEmulator tap = new TapEmulator(optOut, noProtect)) {
                tap.start();
                check(leases.poll(5, TimeUnit.SECONDS) != null, "running without protect");
                check(protects.get() == 0, "protect not called");
            }
            check(TapEmulator.implementsProtect(new TestRunner.Recorder()), "an override is seen");
            check(!TapEmulator.implementsProtect(noProtect), "no override");
        });

        test("attachTun takes the fd in every outcome: closed exactly once (/proc/self/fd)", () -> {
            Path dir = Files.createTempDirectory("tapemu-fd");
            Path fifo = dir.resolve("tun");
            String target = fifo.toString();
            TestRunner.Recorder r = new TestRunner.Recorder();
            try (TapEmulator tap = new TapEmulator(TestRunner.staticCallback(), r)) {
                tap.start();
                check(r.leases.poll(5, TimeUnit.SECONDS) != null, "lease");
                // Success: the caller's number is closed at once, the emulator's copy at detach.
                int a = Fds.openFifo(fifo);
                tap.attachTun(a);
                check(Fds.countOpen(target) == 1, "the emulator holds one copy: " + Fds.countOpen(target));
                check(tap.stats().get("tun_attached") == 1, "attached");
                // Attaching the same number again: it is closed now, so an IOException, and
                // the attached copy is untouched.
                expect(IOException.class, () -> tap.attachTun(a));
                check(Fds.countOpen(target) == 1, "still one copy");
                // A second TUN replaces (and closes) the first.
                int b = Fds.openFifo(dir.resolve("tun2"));
                tap.attachTun(b);
                check(Fds.countOpen(target) == 0, "the replaced TUN is closed");
                check(Fds.countOpen(dir.resolve("tun2").toString()) == 1, "the new one attached");
                tap.detachTun();
                check(Fds.countOpen(dir.resolve("tun2").toString()) == 0, "detach closes it");
                // Not a TUN or socket: IOException, and closed.
                Path plain = dir.resolve("plain-file");
                Files.write(plain, new byte[1]);
                int notTun = Fds.openFile(plain); // a regular file: epoll refuses it
                expect(IOException.class, () -> tap.attachTun(notTun));
                check(Fds.countOpen(plain.toString()) == 0, "the unusable fd is closed");
                Files.delete(plain);
                // Invalid: nothing to close, nothing else closed.
                expect(IOException.class, () -> tap.attachTun(-1));
                expect(IOException.class, () -> tap.attachTun(987654));
            }
            // A closed emulator takes the fd too.
            TapEmulator closed = new TapEmulator(TestRunner.staticCallback(), r);
            closed.close();
            int c = Fds.openFifo(fifo);
            expect(IllegalStateException.class, () -> closed.attachTun(c));
            check(Fds.countOpen(target) == 0, "closed by a closed emulator");
            Files.deleteIfExists(fifo);
            Files.deleteIfExists(dir.resolve("tun2"));
            Files.deleteIfExists(dir);
        });

        test("close() holds no lock across a native call: a listener calling stats() and close() meanwhile", () -> {
            AtomicReference<TapEmulator> self = new AtomicReference<>();
            AtomicReference<Thread> closer = new AtomicReference<>();
            CountDownLatch inListener = new CountDownLatch(1);
            CountDownLatch listenerDone = new CountDownLatch(1);
            TestRunner.Recorder r = new TestRunner.Recorder() {
                @Override
                public void onFrame(ByteBuffer frame) {
                    // Only the reply to the request below: the emulator's own announcements
                    // may come first, and closing then would race the test's sendFrame.
                    int at = frame.position();
                    boolean arpReply = frame.remaining() >= 22 && frame.get(at + 12) == 0x08
                            && frame.get(at + 13) == 0x06 && frame.get(at + 21) == 2;
                    if (!arpReply || inListener.getCount() == 0) {
                        return;
                    }
                    inListener.countDown();
                    try {
                        // Wait until the closer is inside close()'s native call...
                        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                        while (System.nanoTime() < end && !inNative(closer.get())) {
                            Thread.yield();
                        }
                        // ...then call back in, as a listener may.
                        self.get().stats();
                        self.get().close();
                    } finally {
                        listenerDone.countDown();
                    }
                }
            };
            TapEmulator tap = new TapEmulator(TestRunner.staticCallback(), r);
            self.set(tap);
            tap.start();
            check(r.leases.poll(5, TimeUnit.SECONDS) != null, "lease");
            byte[] req = Frames.arpRequest(PEER_MAC, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"));
            Thread t = new Thread(() -> {
                try {
                    inListener.await(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    return;
                }
                tap.close();
            }, "closer");
            closer.set(t);
            t.start();
            tap.sendFrame(req, 0, req.length);
            // Well below the 10 s a native call waits for a busy emulator thread.
            check(listenerDone.await(5, TimeUnit.SECONDS), "the listener's stats() and close() returned");
            t.join(5000);
            check(!t.isAlive(), "close() returned");
            check(tap.isClosed(), "closed");
        });

        test("batches: ARP reply through sendFrames and onFrames, exact bytes, both buffer kinds", () -> {
            BatchRecorder r = new BatchRecorder();
            try (TapEmulator tap = new TapEmulator(TestRunner.staticCallback(), r)) {
                tap.start();
                check(r.leases.poll(5, TimeUnit.SECONDS) != null, "lease");
                byte[] req = Frames.arpRequest(PEER_MAC, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"));
                byte[] expected = Frames.arpReply(OUR_MAC, Frames.ip("192.0.2.50"), PEER_MAC, Frames.ip("192.0.2.1"));
                for (boolean direct : new boolean[] {true, false}) {
                    ByteBuffer batch = batchOf(Arrays.asList(req, req, req), direct);
                    check(tap.sendFrames(batch) == 3 && !batch.hasRemaining(), "three taken");
                    int replies = 0;
                    for (int i = 0; i < 10 && replies < 3; i++) {
                        byte[] f = r.next(0x0806, 3000);
                        if (f != null && f[21] == 2) {
                            check(Arrays.equals(Arrays.copyOf(f, 42), expected), "reply bytes " + Frames.hex(f));
                            replies++;
                        }
                    }
                    check(replies == 3, "three replies, got " + replies);
                }
                check(r.batches.get() >= 1, "frames came in batches");
                ByteBuffer bad = ByteBuffer.allocate(6).putInt(100).putShort((short) 1);
                bad.flip();
                expect(IllegalArgumentException.class, () -> tap.sendFrames(bad));
                check(bad.position() == 0, "a malformed batch takes nothing");
            }
        });

        test("batches: recorded dnsmasq exchange (tests/data/dhcp-dnsmasq.pcap) through sendFrames -> lease", () -> {
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
            byte[] serverMac = Arrays.copyOfRange(offers.get(0), 6, 12);
            BatchRecorder r = new BatchRecorder();
            try (TapEmulator tap = new TapEmulator(TapConfig.builder().mac("02:00:00:00:00:64").build(), r)) {
                tap.start();
                Lease lease = null;
                long end = System.currentTimeMillis() + 15000;
                while (lease == null && System.currentTimeMillis() < end) {
                    lease = r.leases.poll(0, TimeUnit.MILLISECONDS);
                    byte[] f = r.frames.poll(50, TimeUnit.MILLISECONDS);
                    if (f == null) {
                        continue;
                    }
                    byte[] reply = null;
                    if (Frames.etherType(f) == 0x0806 && f[21] == 1 && Frames.ipString(f, 38).equals("192.0.2.1")) {
                        reply = Frames.arpReply(serverMac, Frames.ip("192.0.2.1"),
                                Arrays.copyOfRange(f, 22, 28), Arrays.copyOfRange(f, 28, 32));
                    } else {
                        Frames.Dhcp d = Frames.parseDhcpFromClient(f);
                        if (d != null && (d.type == 1 || d.type == 3)) {
                            reply = Frames.withXid(d.type == 1 ? offers.get(0) : acks.get(0), d.xid);
                        }
                    }
                    if (reply != null) {
                        check(tap.sendFrames(batchOf(Arrays.asList(reply), true)) == 1, "taken");
                    }
                }
                check(lease != null && lease.address().getHostAddress().equals("192.0.2.182"), "lease " + lease);
            }
        });

        test("backpressure: a 20,000-frame burst -> every frame reported taken reaches the emulator", () -> {
            BatchRecorder r = new BatchRecorder() {
                @Override
                public void onFrames(ByteBuffer batch) {
                    batches.incrementAndGet(); // keep nothing
                }
            };
            try (TapEmulator tap = new TapEmulator(TestRunner.staticCallback(), r)) {
                tap.start();
                check(r.leases.poll(5, TimeUnit.SECONDS) != null, "lease");
                byte[] req = Frames.arpRequest(PEER_MAC, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"));
                List<byte[]> burst = new ArrayList<>();
                for (int i = 0; i < 20_000; i++) {
                    burst.add(req);
                }
                ByteBuffer batch = batchOf(burst, true);
                long inBefore = tap.stats().get("link.frames_in");
                int taken = tap.sendFrames(batch);
                int refused = 20_000 - taken;
                System.out.println("     taken " + taken + " of 20000 at once");
                check(taken > 0, "taken: " + taken);
                check(batch.remaining() == refused * (4 + req.length), "the rest is left in the buffer");
                long end = System.currentTimeMillis() + 10000;
                while (tap.stats().get("link.frames_in") - inBefore < taken && System.currentTimeMillis() < end) {
                    Thread.yield();
                }
                TapStats s = tap.stats();
                check(s.get("link.frames_in") - inBefore == taken, "every taken frame arrived: " + s);
                check(taken == 20_000 || s.get("callback_frames_refused") >= 1, "refusals counted: " + s);
            }
        });

        test("setLogLevel: every level is accepted", () -> {
            for (TapEmulator.LogLevel l : TapEmulator.LogLevel.values()) {
                TapEmulator.setLogLevel(l);
            }
            TapEmulator.setLogLevel(TapEmulator.LogLevel.WARN);
        });
    }

    /** @return whether {@code t} is inside a native method of TapEmulator */
    static boolean inNative(Thread t) {
        if (t == null) {
            return false;
        }
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.isNativeMethod() && e.getMethodName().startsWith("native")) {
                return true;
            }
        }
        return false;
    }
}
