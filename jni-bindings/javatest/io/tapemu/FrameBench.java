package io.tapemu;

import java.nio.ByteBuffer;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Frame throughput, closed loop: ARP requests for our address in, replies out, at most
 * {@code IN_FLIGHT} requests unanswered. Callback mode per-frame ({@code sendFrame} +
 * {@code onFrame}, one upcall per frame) against batched ({@code sendFrames} +
 * {@code onFrames}), and the socket-pair link (an engine in Java writing and reading
 * {@link TapEmulator#peerFd()}, one datagram per frame). Arguments: seconds per mode (default
 * 5), then optionally one mode alone ({@code per-frame}, {@code batched} or {@code pair}). Prints
 * round trips/s (frames/s each way). Needs
 * {@code --add-opens java.base/java.io=ALL-UNNAMED} for the socket pair.
 *
 * <p>Mode {@code wake} involves no emulator: two threads hand a token back and forth
 * through the same {@link Semaphore} the loops use for credits, and it prints the hand-offs
 * per second. Each one is a wake-up each way: the cost a closed loop pays whenever
 * both of its threads run out of work. This is its floor on this machine.
 */
public final class FrameBench {
    /** Requests unanswered at most: 64, or the system property {@code tapemu.inFlight}. */
    static final int IN_FLIGHT = Integer.getInteger("tapemu.inFlight", 64);

    private FrameBench() {}

    public static void main(String[] args) throws Exception {
        int seconds = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        String only = args.length > 1 ? args[1] : null;
        if (only != null) {
            // One mode in this JVM (scripts/bench-frames.sh runs each in its own).
            double rate;
            if (only.equals("per-frame")) {
                rate = run(false, seconds);
            } else if (only.equals("batched")) {
                rate = run(true, seconds);
            } else if (only.equals("pair")) {
                rate = runSocketPair(seconds);
            } else if (only.equals("wake")) {
                rate = runWake(seconds);
            } else {
                throw new IllegalArgumentException("mode: per-frame, batched, pair or wake");
            }
            System.out.printf("%s: %.0f %s/s%n", only, rate, only.equals("wake") ? "hand-offs" : "round trips");
            System.exit(0);
        }
        double perFrame = run(false, seconds);
        double batched = run(true, seconds);
        double pair = runSocketPair(seconds);
        System.out.printf("per-frame:   %.0f round trips/s%nbatched:     %.0f round trips/s (%.1fx)%n"
                + "socket pair: %.0f round trips/s%n", perFrame, batched, batched / perFrame, pair);
        System.exit(0);
    }

    static TapConfig.Builder staticConfig() {
        return TapConfig.builder().mac("02:00:5e:10:00:01").staticAddress("192.0.2.50", 24, null).ipv6(false);
    }

    static byte[] request() {
        return Frames.arpRequest(Frames.mac("02:00:5e:10:00:99"), Frames.ip("192.0.2.1"), Frames.ip("192.0.2.50"));
    }

    /** Two threads handing a token back and forth: hand-offs (two wake-ups each) per second. */
    static double runWake(int seconds) throws Exception {
        Semaphore there = new Semaphore(0);
        Semaphore back = new Semaphore(0);
        Thread other = new Thread(() -> {
            try {
                while (true) {
                    there.acquire();
                    back.release();
                }
            } catch (InterruptedException e) {
                // done
            }
        }, "bench-wake");
        other.setDaemon(true);
        other.start();
        long warm = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        while (System.nanoTime() < warm) {
            there.release();
            back.acquire();
        }
        long n = 0;
        long start = System.nanoTime();
        long end = start + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < end) {
            there.release();
            back.acquire();
            n++;
        }
        other.interrupt();
        return n * 1e9 / (System.nanoTime() - start);
    }

    /** The socket-pair link: Java writes requests to and reads replies from the peer fd. */
    static double runSocketPair(int seconds) throws Exception {
        Semaphore credits = new Semaphore(IN_FLIGHT);
        AtomicLong replies = new AtomicLong();
        byte[] req = request();
        try (TapEmulator tap = new TapEmulator(staticConfig().socketPair().build(), new TapListener() {})) {
            java.io.FileDescriptor fd = Fds.attach(tap.peerFd());
            java.io.FileInputStream in = new java.io.FileInputStream(fd);
            java.io.FileOutputStream out = new java.io.FileOutputStream(fd);
            Thread reader = new Thread(() -> {
                byte[] buf = new byte[2048];
                try {
                    while (true) {
                        int n = in.read(buf);
                        if (n < 0) {
                            return;
                        }
                        if (n >= 22 && buf[21] == 2) {
                            replies.incrementAndGet();
                            credits.release();
                        }
                    }
                } catch (java.io.IOException e) {
                    // closed
                }
            }, "bench-reader");
            reader.setDaemon(true);
            reader.start();
            tap.start();
            long warm = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            long start = 0;
            long startReplies = 0;
            long end = Long.MAX_VALUE;
            while (System.nanoTime() < end) {
                if (start == 0 && System.nanoTime() >= warm) {
                    start = System.nanoTime();
                    startReplies = replies.get();
                    end = start + TimeUnit.SECONDS.toNanos(seconds);
                }
                if (credits.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                    out.write(req);
                }
            }
            double rate = (replies.get() - startReplies) * 1e9 / (System.nanoTime() - start);
            System.out.printf("socket pair: %s%n", tap.stats());
            return rate;
        }
    }

    static double run(boolean batched, int seconds) throws Exception {
        Semaphore credits = new Semaphore(IN_FLIGHT);
        AtomicLong replies = new AtomicLong();
        TapListener l = batched ? new TapListener() {
            @Override
            public void onFrames(ByteBuffer batch) {
                int n = 0;
                while (batch.hasRemaining()) {
                    int len = batch.getInt();
                    if (len >= 22 && batch.get(batch.position() + 21) == 2) {
                        n++;
                    }
                    batch.position(batch.position() + len);
                }
                replies.addAndGet(n);
                credits.release(n);
            }
        } : new TapListener() {
            @Override
            public void onFrame(ByteBuffer frame) {
                if (frame.remaining() >= 22 && frame.get(21) == 2) {
                    replies.incrementAndGet();
                    credits.release();
                }
            }
        };
        TapConfig cfg = staticConfig().batchFrames(batched).build();
        byte[] req = request();
        ByteBuffer batch = ByteBuffer.allocateDirect(IN_FLIGHT * (4 + req.length));
        ByteBuffer one = ByteBuffer.allocateDirect(req.length);
        one.put(req).flip();
        try (TapEmulator tap = new TapEmulator(cfg, l)) {
            tap.start();
            long warm = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            long start = 0;
            long startReplies = 0;
            long end = Long.MAX_VALUE;
            while (System.nanoTime() < end) {
                if (start == 0 && System.nanoTime() >= warm) {
                    start = System.nanoTime();
                    startReplies = replies.get();
                    end = start + TimeUnit.SECONDS.toNanos(seconds);
                }
                if (!credits.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                    continue;
                }
                int n = 1 + credits.drainPermits();
                if (batched) {
                    batch.clear();
                    for (int i = 0; i < n; i++) {
                        batch.putInt(req.length).put(req);
                    }
                    batch.flip();
                    int taken = tap.sendFrames(batch);
                    credits.release(n - taken);
                } else {
                    int taken = 0;
                    for (int i = 0; i < n; i++) {
                        if (tap.sendFrame(one)) {
                            taken++;
                        }
                    }
                    credits.release(n - taken);
                }
            }
            double rate = (replies.get() - startReplies) * 1e9 / (System.nanoTime() - start);
            System.out.printf("%s: %s%n", batched ? "batched" : "per-frame", tap.stats());
            return rate;
        }
    }
}
