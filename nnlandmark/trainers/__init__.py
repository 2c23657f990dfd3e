"""Our trainers, found by name from this package only (nnU-Net's name lookup is not used, docs/design.md)."""
from nnlandmark.errors import LandmarkError
from nnlandmark.trainers.nnLandmarkTrainer import nnLandmarkTrainer
from nnlandmark.trainers import variants  # noqa: F401  (registers the variants as subclasses)


def all_trainer_classes() -> dict:
    found, todo = {}, [nnLandmarkTrainer]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def trainer_class_by_name(name: str):
    classes = all_trainer_classes()
    if name not in classes:
        raise LandmarkError(f"unknown trainer '{name}' (not an nnlandmark trainer); available: "
                            f"{', '.join(sorted(classes))}")
    return classes[name]
