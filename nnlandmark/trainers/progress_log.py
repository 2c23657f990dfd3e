"""Training curves under honest names: loss and landmark error in voxels, never 'pseudo Dice'."""
import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
from nnunetv2.training.logging.nnunet_logger import LocalLogger  # noqa: E402

LANDMARK_LOG_KEYS = ("train_losses", "val_losses", "val_landmark_error_vox", "ema_val_landmark_error_vox",
                     "lrs", "epoch_start_timestamps", "epoch_end_timestamps")


class LandmarkProgressLog(LocalLogger):
    """nnU-Net's per-epoch list logger with landmark keys; checkpoints store and restore it unchanged."""

    def __init__(self, verbose: bool = False):
        super().__init__(verbose)
        self.my_fantastic_logging = {k: [] for k in LANDMARK_LOG_KEYS}

    def plot_progress_png(self, output_folder):
        log = self.my_fantastic_logging
        n = min(len(v) for v in log.values())
        epochs = list(range(n))
        fig, (ax_loss, ax_time) = plt.subplots(2, 1, figsize=(10, 9))
        ax_loss.plot(epochs, log["train_losses"][:n], "b-", label="train loss")
        ax_loss.plot(epochs, log["val_losses"][:n], "r-", label="val loss")
        ax_err = ax_loss.twinx()
        ax_err.plot(epochs, log["val_landmark_error_vox"][:n], "g:", label="val patch landmark error")
        ax_err.plot(epochs, log["ema_val_landmark_error_vox"][:n], "g-", label="val patch landmark error (EMA)")
        ax_loss.set_xlabel("epoch"); ax_loss.set_ylabel("loss"); ax_err.set_ylabel("landmark error [voxel]")
        ax_loss.legend(loc="upper left"); ax_err.legend(loc="upper right")
        durations = [e - s for s, e in zip(log["epoch_start_timestamps"][:n], log["epoch_end_timestamps"][:n])]
        ax_time.plot(epochs, durations, "b-"); ax_time.set_xlabel("epoch"); ax_time.set_ylabel("epoch time [s]")
        fig.tight_layout()
        fig.savefig(f"{output_folder}/progress.png")
        plt.close(fig)
