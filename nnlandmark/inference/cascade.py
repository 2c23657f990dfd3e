"""What ``nnLandmark_predict`` does with a model folder: one stage, or a cascade in one call.

A fine stage (stages.is_fine_stage) is only meant to be read near its coarse stage's landmarks: the coarse model
predicts the cases first (into OUTPUT_DIR/3d_whole or OUTPUT_DIR/2d_whole, as nnU-Net keeps a cascade's previous
stage), then the fine model reads each landmark within a ball around them, of the radius the coarse stage's
cross-validation errors call for (stages.cv_search_radii), and keeps the coarse landmark where its own maximum there
is weak.
"""
from os.path import isdir, join
from typing import List, Optional, Sequence, Union

from nnlandmark.errors import LandmarkError
from nnlandmark.inference.predictor import SEARCH_RADIUS_MM, LandmarkPredictor, Search, SearchRadius
from nnlandmark.io.predictions import Points, read_predictions
from nnlandmark.landmark_set import landmark_names, read_dataset_json
from nnlandmark.stages import coarse_stage_folder, read_search_radii, stage_configuration

WEAK_FINE_LIKELIHOOD = 0.1   # a fine maximum below this inside its ball: the coarse landmark is kept (flagged)


def predict_model(model_folder: str, input_dir: Union[str, Sequence[str]], output_dir: str,
                  folds: Optional[Sequence] = None, checkpoint_name: str = 'checkpoint_final.pth',
                  trust_checkpoint: bool = False, priors: Optional[Points] = None,
                  search_radius_mm: Optional[SearchRadius] = None, predictor_kwargs: Optional[dict] = None,
                  **folder_kwargs) -> List[str]:
    """Predict every case of ``input_dir`` with ``model_folder``: LandmarkPredictor.from_model_folder(...,
    **predictor_kwargs).predict_folder(..., **folder_kwargs). For a fine stage without ``priors`` its coarse stage
    runs first (all its trained folds, same cases and parts); ``search_radius_mm`` left out: the coarse stage's radii
    where it has them, else SEARCH_RADIUS_MM."""
    predictor_kwargs = predictor_kwargs or {}
    coarse = coarse_stage_folder(model_folder)
    if coarse is not None and priors is None and not isdir(coarse):
        raise LandmarkError(f"{model_folder} is the fine stage of a cascade and is read around its coarse stage, "
                            f"which is not trained ({coarse}): train {stage_configuration(coarse)} first, or pass "
                            f"-prev_stage_predictions")
    fine = LandmarkPredictor.from_model_folder(model_folder, folds, checkpoint_name, trust_checkpoint,
                                               **predictor_kwargs)
    fine.check_review(folder_kwargs.get('review_mm'))
    if coarse is not None and priors is None:
        coarse_output = join(output_dir, stage_configuration(coarse))
        print(f"coarse stage {coarse} -> {coarse_output}")
        stage_kwargs = {k: v for k, v in folder_kwargs.items() if k in _STAGE_OPTIONS}
        LandmarkPredictor.from_model_folder(coarse, None, checkpoint_name, trust_checkpoint, **predictor_kwargs) \
            .predict_folder(input_dir, coarse_output, **stage_kwargs)
        priors = read_predictions(coarse_output)[0]
    if priors is None:
        return fine.predict_folder(input_dir, output_dir, None, **folder_kwargs)
    if search_radius_mm is None and coarse is not None:
        names = landmark_names(read_dataset_json(join(model_folder, 'dataset.json')))
        search_radius_mm = read_search_radii(coarse, names) if isdir(coarse) else None
        if search_radius_mm is None:
            print(f"WARNING: no cross-validation search radius of the coarse stage; searching {SEARCH_RADIUS_MM} mm "
                  f"around each prior landmark (--search_radius sets it)")
        else:
            print(f"fine stage {model_folder}: search radius {min(search_radius_mm.values()):.1f}-"
                  f"{max(search_radius_mm.values()):.1f} mm (from the coarse stage's cross-validation)")
    search = Search(priors, search_radius_mm or SEARCH_RADIUS_MM, WEAK_FINE_LIKELIHOOD if coarse else None)
    return fine.predict_folder(input_dir, output_dir, search, **folder_kwargs)


_STAGE_OPTIONS = ('continue_prediction', 'num_parts', 'part_id', 'num_processes_preprocessing',
                  'num_processes_export', 'pixel_spacing')   # what the coarse stage shares with the fine one
