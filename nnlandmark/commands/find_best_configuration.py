"""nnLandmark_find_best_configuration -d ID [--no_ensembles]: the trained model (or average of two) with the lowest
cross-validation MRE (a dataset of multi-instance classes only: the highest instance F1), written to
nnUNet_results/DatasetXXX/inference_information.json with the commands to predict."""
import argparse

from nnlandmark.commands._cli import user_errors_as_one_line


@user_errors_as_one_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="Compare the cross-validation of every trained model of a dataset "
                                                 "(single stages, cascades, averages of two) and say how to predict "
                                                 "with the best.")
    parser.add_argument('-d', required=True, help='dataset name or ID')
    parser.add_argument('--no_ensembles', action='store_true', help='leave out the averages of two models')
    args = parser.parse_args(argv)
    from nnlandmark.selection import INFERENCE_INFORMATION_JSON, find_best_configuration
    result = find_best_configuration(args.d, not args.no_ensembles)
    width = max(len(r['model']) for r in result['models'])
    if result['ranked_by'] == 'f1':   # multi-instance classes only
        print(f"{'model':<{width}}  instance F1  matched MRE mm  cases  folds")
        for r in sorted(result['models'], key=lambda r: -(r['f1'] or 0)):
            mre = f"{r['matched_mre_mm']:14.2f}" if r['matched_mre_mm'] is not None else f"{'-':>14}"
            f1 = f"{r['f1']:11.3f}" if r['f1'] is not None else f"{'-':>11}"
            print(f"{r['model']:<{width}}  {f1}  {mre}  {r['n_cases']:5d}  {len(r['folds'])}{_note(r)}")
        print(f"\nbest: {result['best']['model']} (cross-validation instance F1 {result['best']['f1']:.3f}); "
              f"predict with:")
    else:
        print(f"{'model':<{width}}  MRE mm  median  SDR@4mm  cases  folds")
        for r in sorted(result['models'], key=lambda r: r['mre_mm']):
            print(f"{r['model']:<{width}}  {r['mre_mm']:6.2f}  {r['median_mm']:6.2f}  {r['sdr_4mm']:6.1f}%  "
                  f"{r['n_cases']:5d}  {len(r['folds'])}{_note(r)}")
        print(f"\nbest: {result['best']['model']} (cross-validation MRE {result['best']['mre_mm']:.2f} mm); "
              f"predict with:")
    for command in result['predict']:
        print(f"  {command}")
    print(f"written: {INFERENCE_INFORMATION_JSON} in $nnUNet_results/{result['dataset']}")


def _note(row: dict) -> str:
    return f"  ({row['note']})" if row['note'] else ""
