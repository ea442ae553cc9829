package io.tapemu;

/**
 * Constructs and closes one emulator (callback mode) and says whether that worked: run on a
 * shrunk and obfuscated build, it shows whether the keep rules left native code what it
 * looks up. Prints {@code constructed} and exits 0, or prints the failure and exits 1.
 */
public final class ShrinkProbe {
    private ShrinkProbe() {}

    public static void main(String[] args) {
        try (TapEmulator tap = new TapEmulator(TapConfig.builder().build(), new TapListener() {})) {
            System.out.println("constructed (closed: " + tap.isClosed() + ")");
        } catch (Throwable t) {
            System.out.println("construction failed: " + t);
            System.exit(1);
        }
    }
}
